//! The few MQTT 3.1.1 packets the publishing connection writes and reads (the encoding
//! helpers are also the benchmark's device simulator's, examples/fleet_sim.rs).

use tokio::io::{AsyncRead, AsyncReadExt};

use super::Outgoing;

/// The protocol's largest remaining length (four length bytes).
pub(crate) const MAX_REMAINING: usize = 268_435_455;

/// Appends an MQTT remaining length.
pub fn remaining_len(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return;
        }
    }
}

/// Appends a length-prefixed string; callers keep it under 64 KiB (`Publisher::publish`
/// checks).
pub fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// CONNECT with a clean session: the connection keeps its own unacknowledged messages.
pub fn connect(client_id: &str, keepalive_s: u16) -> Vec<u8> {
    let mut body = Vec::new();
    string("MQTT", &mut body);
    body.push(4); // 3.1.1
    body.push(0x02); // clean session
    body.extend_from_slice(&keepalive_s.to_be_bytes());
    string(client_id, &mut body);
    let mut out = vec![0x10];
    remaining_len(body.len(), &mut out);
    out.extend(body);
    out
}

/// The remaining length of `m` as a PUBLISH.
pub(crate) fn publish_len(m: &Outgoing) -> usize {
    2 + m.topic.len() + if m.qos > 0 { 2 } else { 0 } + m.payload.len()
}

/// Appends `m` as a PUBLISH (`pid` for QoS 1; `dup` when sent again).
pub(crate) fn publish(out: &mut Vec<u8>, m: &Outgoing, pid: Option<u16>, dup: bool) {
    let mut h = 0x30 | (m.qos << 1) | u8::from(m.retain);
    if dup && pid.is_some() {
        h |= 0x08;
    }
    out.push(h);
    remaining_len(publish_len(m), out);
    string(&m.topic, out);
    if let Some(pid) = pid {
        out.extend_from_slice(&pid.to_be_bytes());
    }
    out.extend_from_slice(&m.payload);
}

pub const PINGREQ: [u8; 2] = [0xC0, 0];
pub const DISCONNECT: [u8; 2] = [0xE0, 0];

/// One packet: (first header byte, body).
pub async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let h = r.read_u8().await?;
    let (mut len, mut shift) = (0usize, 0u32);
    loop {
        let b = r.read_u8().await?;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "malformed remaining length",
            ));
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok((h, body))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_are_encoded_as_mqtt_3_1_1() {
        let m = Outgoing {
            topic: "r58/v1/a/cmd/ping".into(),
            payload: b"{}".to_vec(),
            qos: 1,
            retain: true,
        };
        let mut buf = Vec::new();
        publish(&mut buf, &m, Some(7), true);
        assert_eq!(buf[0], 0x30 | 0x08 | 0x02 | 0x01);
        let (h, body) = read_packet(&mut buf.as_slice()).await.unwrap();
        assert_eq!(h, buf[0]);
        assert_eq!(&body[2..19], b"r58/v1/a/cmd/ping");
        assert_eq!(&body[19..21], &7u16.to_be_bytes());
        assert_eq!(&body[21..], b"{}");
        // A 200-byte body needs two length bytes; QoS 0 has no packet id.
        let big = Outgoing {
            payload: vec![b'x'; 200],
            qos: 0,
            ..m
        };
        buf.clear();
        publish(&mut buf, &big, None, false);
        let (h, body) = read_packet(&mut buf.as_slice()).await.unwrap();
        assert_eq!((h, body.len()), (0x31, 2 + 17 + 200));
        assert_eq!(publish_len(&big), body.len());
        // CONNECT: protocol level 4, clean session, keepalive, client id.
        let c = connect("fleet-pub", 60);
        let (h, body) = read_packet(&mut c.as_slice()).await.unwrap();
        assert_eq!(h, 0x10);
        assert_eq!(&body[..10], b"\0\x04MQTT\x04\x02\0\x3c");
        assert_eq!(&body[10..], b"\0\x09fleet-pub");
        // Five length bytes are not MQTT.
        let bad = [0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(read_packet(&mut bad.as_slice()).await.is_err());
    }
}
