use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// Always a list on output; a single string is accepted on input.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What the device endpoint answers and the fleet API returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub ice_servers: Vec<IceServer>,
    pub expires_at: DateTime<Utc>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(d)? {
        Urls::One(u) => vec![u],
        Urls::Many(v) => v,
    })
}

/// Removes port-53 URLs (many venue firewalls treat traffic to :53 as DNS and break it),
/// and servers left without any URL.
pub fn drop_port_53(servers: Vec<IceServer>) -> Vec<IceServer> {
    servers
        .into_iter()
        .map(|mut s| {
            s.urls.retain(|u| !uses_port_53(u));
            s
        })
        .filter(|s| !s.urls.is_empty())
        .collect()
}

fn uses_port_53(url: &str) -> bool {
    let without_query = url.split('?').next().unwrap_or(url);
    without_query
        .rsplit_once(':')
        .is_some_and(|(_, port)| port == "53")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_53_urls_and_empty_servers_go() {
        let servers = vec![
            IceServer {
                urls: vec![
                    "stun:stun.example.com:3478".into(),
                    "stun:stun.example.com:53".into(),
                ],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec!["turn:t.example.com:53?transport=udp".into()],
                username: Some("u".into()),
                credential: Some("c".into()),
            },
            IceServer {
                urls: vec!["turns:t.example.com:5349?transport=tcp".into()],
                username: Some("u".into()),
                credential: Some("c".into()),
            },
        ];
        let out = drop_port_53(servers);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].urls, vec!["stun:stun.example.com:3478"]);
        assert_eq!(out[1].urls, vec!["turns:t.example.com:5349?transport=tcp"]);
    }

    #[test]
    fn single_url_string_is_accepted_and_written_as_a_list() {
        let s: IceServer =
            serde_json::from_str(r#"{"urls":"turn:a:3478","username":"u","credential":"c"}"#)
                .unwrap();
        assert_eq!(s.urls, vec!["turn:a:3478"]);
        assert!(serde_json::to_string(&s)
            .unwrap()
            .contains(r#""urls":["turn:a:3478"]"#));
    }
}
