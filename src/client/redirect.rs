//! Following redirects: where a `Location` points, and what the next request
//! keeps.

use http::header::{AUTHORIZATION, COOKIE, LOCATION, PROXY_AUTHORIZATION};
use http::uri::{Parts, PathAndQuery};
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::BoxError;

/// The request to send after a redirect: the fetch standard's rules for
/// method and body, and no credentials to another origin.
#[derive(Debug)]
pub(crate) struct Redirected {
    pub(crate) uri: Uri,
    pub(crate) method: Method,
    /// The body and its headers are dropped (the method became `GET`).
    pub(crate) drop_body: bool,
    /// Credentials are dropped (the origin changed).
    pub(crate) drop_credentials: bool,
}

pub(crate) fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The next request after a redirect of `status` from `uri`, or an error when
/// the response has no usable `Location`.
pub(crate) fn follow(
    status: StatusCode,
    uri: &Uri,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Redirected, BoxError> {
    let location = headers
        .get(LOCATION)
        .ok_or("a redirect without a Location header")?
        .to_str()?;
    let target = resolve(uri, location)?;
    // As fetch: a redirect to another scheme is a network error, final.
    if !matches!(target.scheme_str(), Some("http" | "https")) {
        return Err("a redirect to a scheme other than http or https".into());
    }
    let to_get = match status.as_u16() {
        303 => method != Method::HEAD,
        301 | 302 => method == Method::POST,
        _ => false,
    };
    let drop_credentials = target.scheme() != uri.scheme() || target.authority() != uri.authority();
    Ok(Redirected {
        uri: target,
        method: if to_get { Method::GET } else { method.clone() },
        drop_body: to_get,
        drop_credentials,
    })
}

/// Removes the headers that must not follow a redirect to another origin.
pub(crate) fn remove_credentials(headers: &mut HeaderMap) {
    headers.remove(AUTHORIZATION);
    headers.remove(COOKIE);
    headers.remove(PROXY_AUTHORIZATION);
}

/// Resolves `location` against `base`: an absolute URI, a network-path
/// reference (`//host/path`), an absolute path or a relative path. Dot
/// segments are left to the server.
fn resolve(base: &Uri, location: &str) -> Result<Uri, BoxError> {
    let location = location.trim();
    // Fragments never reach the server.
    let location = location
        .split_once('#')
        .map_or(location, |(before, _)| before);
    let scheme = base.scheme_str().ok_or("the request URI has no scheme")?;
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{scheme}://{rest}").parse::<Uri>()?);
    }
    if let Ok(uri) = location.parse::<Uri>() {
        if uri.scheme().is_some() && uri.authority().is_some() {
            return Ok(uri);
        }
    }
    let path_and_query = if location.starts_with('/') {
        location.to_owned()
    } else if let Some(query) = location.strip_prefix('?') {
        format!("{}?{query}", base.path())
    } else {
        let path = base.path();
        let directory = path.rfind('/').map_or("/", |slash| &path[..=slash]);
        format!("{directory}{location}")
    };
    let mut parts = Parts::default();
    parts.scheme = base.scheme().cloned();
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(path_and_query.parse::<PathAndQuery>()?);
    Ok(Uri::from_parts(parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(location: &str) -> String {
        let base: Uri = "http://example.test/a/b?x=1".parse().unwrap();
        resolve(&base, location).unwrap().to_string()
    }

    #[test]
    fn locations_resolve_against_the_request_uri() {
        assert_eq!(resolved("http://other.test/c"), "http://other.test/c");
        assert_eq!(resolved("//other.test/c"), "http://other.test/c");
        assert_eq!(resolved("/c?y=2"), "http://example.test/c?y=2");
        assert_eq!(resolved("c"), "http://example.test/a/c");
        assert_eq!(resolved("?y=2"), "http://example.test/a/b?y=2");
        assert_eq!(resolved("/c#fragment"), "http://example.test/c");
    }

    #[test]
    fn bad_locations_are_errors() {
        let base: Uri = "http://example.test/".parse().unwrap();
        assert!(resolve(&base, "/a b").is_err());
        assert!(resolve(&base, "//").is_err());
    }

    #[test]
    fn post_becomes_get_on_303_and_keeps_its_method_on_307() {
        let uri: Uri = "http://example.test/a".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, "/b".parse().unwrap());
        let see_other = follow(StatusCode::SEE_OTHER, &uri, &Method::POST, &headers).unwrap();
        assert_eq!((see_other.method, see_other.drop_body), (Method::GET, true));
        let temporary = follow(
            StatusCode::TEMPORARY_REDIRECT,
            &uri,
            &Method::POST,
            &headers,
        )
        .unwrap();
        assert_eq!(
            (temporary.method, temporary.drop_body),
            (Method::POST, false)
        );
        assert!(!temporary.drop_credentials);
    }

    #[test]
    fn credentials_do_not_follow_to_another_origin() {
        let uri: Uri = "http://example.test/a".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, "http://other.test/b".parse().unwrap());
        let redirected = follow(StatusCode::FOUND, &uri, &Method::GET, &headers).unwrap();
        assert!(redirected.drop_credentials);
    }

    #[test]
    fn a_redirect_to_another_scheme_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, "ftp://files.example/feed".parse().unwrap());
        let uri: Uri = "http://example.com/events".parse().unwrap();
        let followed = follow(StatusCode::FOUND, &uri, &Method::GET, &headers);
        assert!(followed.is_err());
    }
}
