//! Webhook delivery: URL safety checks and the signed POST.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::signing::Signer25519;

/// The HTTP client notifications go out on.
pub type WebhookClient = Client<HttpConnector, Full<Bytes>>;

/// A client with a connect timeout.
pub fn client() -> WebhookClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new()).build(http)
}

/// Why a webhook URL is refused, or `None` if it is acceptable: plain
/// `http` to a public host or to loopback (the local development setup);
/// private, link-local, unspecified and multicast addresses are refused so a
/// subscription cannot probe the server's internal network.
pub fn reject_reason(url: &str) -> Option<&'static str> {
    let Ok(uri) = url.parse::<Uri>() else {
        return Some("not a valid URL");
    };
    if uri.scheme_str() != Some("http") {
        return Some("only http webhook URLs are supported");
    }
    let Some(host) = uri.host() else {
        return Some("URL has no host");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            if ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
            {
                return Some("webhook URL points at a private or special address");
            }
        }
        Ok(IpAddr::V6(ip)) => {
            let seg0 = ip.segments()[0];
            if ip.is_unspecified()
                || ip.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00
                || (seg0 & 0xffc0) == 0xfe80
            {
                return Some("webhook URL points at a private or special address");
            }
        }
        Err(_) => {}
    }
    None
}

/// POSTs a signed JSON notification; returns the receiver's JSON answer
/// (`Null` for an empty or non-JSON 2xx body), or `Err` on failure.
pub async fn deliver(
    client: &WebhookClient,
    signer: &Signer25519,
    url: &str,
    body: Bytes,
) -> Result<serde_json::Value, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("webhook-signature", signer.header(now, &body))
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "webhook timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let bytes = tokio::time::timeout(Duration::from_secs(10), res.into_body().collect())
        .await
        .map_err(|_| "webhook body timed out".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("webhook answered {status}"));
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::reject_reason;

    #[test]
    fn url_rules() {
        assert!(reject_reason("http://10.0.0.1/hook").is_some());
        assert!(reject_reason("http://192.168.1.1/hook").is_some());
        assert!(reject_reason("http://169.254.169.254/").is_some());
        assert!(reject_reason("ftp://example.com/").is_some());
        assert!(reject_reason("http://127.0.0.1:8080/webhook").is_none());
        assert!(reject_reason("http://example.com/hook").is_none());
    }
}
