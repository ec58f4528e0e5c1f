//! HTTP Digest authentication (RFC 7616 / 2617, MD5, `qop=auth`) as stock Antminer CGI
//! pages require it. Hashing comes from `md-5`; this module only assembles the fields.
//!
//! Both sides live here: the client answers a challenge, the simulator checks an answer.

use md5::{Digest as _, Md5};

/// A `WWW-Authenticate: Digest ...` challenge from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space; part of HA1.
    pub realm: String,
    /// Server nonce the answer must bind to.
    pub nonce: String,
    /// Opaque value to echo back unchanged, when sent.
    pub opaque: Option<String>,
    /// Whether the server offered `qop=auth` (else the RFC 2069 form is used).
    pub qop_auth: bool,
}

/// Lower-case hex MD5 of `data`.
pub fn md5_hex(data: &str) -> String {
    hex::encode(Md5::digest(data.as_bytes()))
}

/// Splits `k1="v1", k2=v2` parameter lists, honouring quotes (values may hold commas).
pub fn parse_params(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest
            .get(..eq)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        rest = rest.get(eq + 1..).unwrap_or_default().trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            value = quoted.get(..end).unwrap_or_default().to_string();
            rest = quoted.get(end + 1..).unwrap_or_default();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest.get(..end).unwrap_or_default().trim().to_string();
            rest = rest.get(end..).unwrap_or_default();
        }
        out.push((key, value));
        rest = rest.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value; `None` unless it is a Digest challenge.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let scheme_end = header.find(char::is_whitespace)?;
        if !header.get(..scheme_end)?.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = parse_params(header.get(scheme_end..)?);
        Some(Challenge {
            realm: param(&params, "realm")?.to_string(),
            nonce: param(&params, "nonce")?.to_string(),
            opaque: param(&params, "opaque").map(str::to_string),
            qop_auth: param(&params, "qop")
                .is_some_and(|q| q.split(',').any(|t| t.trim() == "auth")),
        })
    }

    /// Builds the `Authorization` header answering this challenge for one request.
    pub fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let nc = format!("{nc:08x}");
        let response = response_hash(
            &self.realm,
            &self.nonce,
            self.qop_auth.then_some((nc.as_str(), cnonce)),
            user,
            password,
            method,
            uri,
        );
        let mut header = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm=MD5, response=\"{response}\"",
            self.realm, self.nonce
        );
        if self.qop_auth {
            header.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(opaque) = &self.opaque {
            header.push_str(&format!(", opaque=\"{opaque}\""));
        }
        header
    }
}

/// The `response` field: `MD5(HA1:nonce:nc:cnonce:auth:HA2)`, or `MD5(HA1:nonce:HA2)` without qop.
pub fn response_hash(
    realm: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Server side: whether an `Authorization` header is a valid answer for this user,
/// password, realm, nonce and method.
pub fn verify(
    header: &str,
    method: &str,
    realm: &str,
    nonce: &str,
    user: &str,
    password: &str,
) -> bool {
    let header = header.trim();
    let Some(rest) = header
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("digest"))
        .and_then(|_| header.get(6..))
    else {
        return false;
    };
    let params = parse_params(rest);
    let (Some(got_user), Some(got_realm), Some(got_nonce), Some(uri), Some(response)) = (
        param(&params, "username"),
        param(&params, "realm"),
        param(&params, "nonce"),
        param(&params, "uri"),
        param(&params, "response"),
    ) else {
        return false;
    };
    if got_user != user || got_realm != realm || got_nonce != nonce {
        return false;
    }
    let qop = match (
        param(&params, "qop"),
        param(&params, "nc"),
        param(&params, "cnonce"),
    ) {
        (Some("auth"), Some(nc), Some(cnonce)) => Some((nc, cnonce)),
        (None, _, _) => None,
        _ => return false,
    };
    response_hash(realm, nonce, qop, user, password, method, uri) == response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // The worked example of RFC 2617 section 3.5.
        let r = response_hash(
            "testrealm@host.com",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn challenge_parse_and_round_trip() {
        let c = Challenge::parse(
            r#"Digest realm="antMiner Configuration", nonce="abc,def", qop="auth,auth-int", opaque="xyz""#,
        )
        .unwrap();
        assert_eq!(c.realm, "antMiner Configuration");
        assert_eq!(c.nonce, "abc,def");
        assert!(c.qop_auth);
        assert_eq!(c.opaque.as_deref(), Some("xyz"));
        let h = c.authorization("root", "root", "POST", "/cgi-bin/x.cgi", "c1", 1);
        assert!(verify(&h, "POST", &c.realm, &c.nonce, "root", "root"));
        assert!(!verify(&h, "POST", &c.realm, &c.nonce, "root", "wrong"));
        assert!(!verify(&h, "GET", &c.realm, &c.nonce, "root", "root"));
        assert!(!verify(
            "Basic cm9vdDpyb290",
            "POST",
            &c.realm,
            &c.nonce,
            "root",
            "root"
        ));
    }

    #[test]
    fn non_digest_challenge_is_none() {
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest nonce=\"n\"").is_none());
        assert!(Challenge::parse("").is_none());
    }
}
