//! The first line of each stream: the fleet's request and the box's answer.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::TunnelError;

/// The longest header line either end accepts, newline included.
pub const MAX_LINE: usize = 256;

/// The fleet's request for a stream to `port` on the box.
pub fn open_request(port: u16) -> String {
    format!("R58T/1 open {port}\n")
}

/// The port a request line (without its newline) asks for.
pub fn parse_open(line: &str) -> Result<u16, TunnelError> {
    line.strip_prefix("R58T/1 open ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| TunnelError::BadHeader(line.to_string()))
}

/// The box's answer: `None` for `OK`, the reason of a `NO`.
pub fn parse_answer(line: &str) -> Result<Option<String>, TunnelError> {
    match line {
        "OK" => Ok(None),
        _ => line
            .strip_prefix("NO ")
            .map(|r| Some(r.to_string()))
            .ok_or_else(|| TunnelError::BadHeader(line.to_string())),
    }
}

/// Reads one line (up to [`MAX_LINE`] bytes) byte by byte, so nothing after it is consumed.
pub async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> Result<String, TunnelError> {
    let mut line = Vec::new();
    loop {
        let b = r.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() >= MAX_LINE {
            return Err(TunnelError::BadHeader(
                String::from_utf8_lossy(&line).into_owned(),
            ));
        }
    }
    String::from_utf8(line)
        .map_err(|e| TunnelError::BadHeader(String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_parse_and_nonsense_is_named() {
        let req = open_request(8000);
        assert_eq!(parse_open(req.trim_end()).unwrap(), 8000);
        assert!(
            matches!(parse_open("R58T/1 open 70000"), Err(TunnelError::BadHeader(l)) if l.contains("70000"))
        );
        assert!(parse_open("GET / HTTP/1.1").is_err());
        assert_eq!(parse_answer("OK").unwrap(), None);
        assert_eq!(
            parse_answer("NO closed").unwrap().as_deref(),
            Some("closed")
        );
        assert!(parse_answer("YES").is_err());
    }

    #[tokio::test]
    async fn a_line_stops_at_its_newline_and_a_long_one_is_refused() {
        let mut input: &[u8] = b"R58T/1 open 22\nrest";
        assert_eq!(read_line(&mut input).await.unwrap(), "R58T/1 open 22");
        assert_eq!(input, b"rest");
        let long = vec![b'a'; MAX_LINE + 10];
        assert!(matches!(
            read_line(&mut long.as_slice()).await,
            Err(TunnelError::BadHeader(_))
        ));
        let mut cut: &[u8] = b"R58T/1 op";
        assert!(matches!(read_line(&mut cut).await, Err(TunnelError::Io(_))));
    }
}
