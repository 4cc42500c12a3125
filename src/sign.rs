//! `SigV4` request signing on the `aws-sigv4` crate, with the credentials botocore resolved.
//!
//! What is signed is what botocore signs: every header present when the request is signed
//! (`host`, `content-type`, the `x-amzn-sagemaker-*` ones, `x-amz-date`, and
//! `x-amz-security-token` with temporary credentials), with the SHA-256 of the body in the
//! canonical request and no `x-amz-content-sha256` header. `User-Agent` and the `amz-sdk-*`
//! headers are added after signing, as botocore adds them.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::event_stream::Message;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::transport::Transport;

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// No credentials were set.
    NoCredentials,
    /// The request cannot be signed as it is (a header value that is not text, ...).
    Invalid(String),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoCredentials => f.write_str("Unable to locate credentials"),
            Self::Invalid(message) => write!(f, "cannot sign the request: {message}"),
        }
    }
}

impl std::error::Error for SignError {}

/// Signs requests for one service in one region; its credentials can be replaced at any time
/// (when botocore refreshes them).
pub struct Signer {
    region: String,
    service: String,
    identity: RwLock<Option<Arc<Identity>>>,
}

impl Signer {
    /// A signer for `service` (the signing name) in `region`, without credentials yet.
    #[must_use]
    pub fn new(region: &str, service: &str) -> Self {
        Self {
            region: region.to_owned(),
            service: service.to_owned(),
            identity: RwLock::new(None),
        }
    }

    /// Use these credentials from now on.
    pub fn set_credentials(&self, access_key: &str, secret_key: &str, token: Option<&str>) {
        let credentials = Credentials::new(
            access_key,
            secret_key,
            token.map(ToOwned::to_owned),
            None,
            "botocore",
        );
        let identity = Arc::new(Identity::from(credentials));
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(identity);
    }

    fn identity(&self) -> Result<Arc<Identity>, SignError> {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(SignError::NoCredentials)
    }

    /// The signing region.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The signing name of the service.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Add `x-amz-date`, `authorization` (and `x-amz-security-token`) to `headers`, signing
    /// them with the body at `time`. Returns the signature (the seed of event-stream signing).
    ///
    /// # Errors
    /// `NoCredentials`, or `Invalid` for a request that cannot be signed.
    pub fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: SignableBody<'_>,
        time: SystemTime,
    ) -> Result<String, SignError> {
        let identity = self.identity()?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignError::Invalid(e.to_string()))?
            .into();
        let mut pairs = Vec::with_capacity(headers.len());
        for (name, value) in headers.iter() {
            let text = value.to_str().map_err(|_| {
                SignError::Invalid(format!("the value of header {name} is not visible ASCII"))
            })?;
            pairs.push((name.as_str(), text));
        }
        let uri_text = uri.to_string();
        let signable = SignableRequest::new(method.as_str(), uri_text, pairs.into_iter(), body)
            .map_err(|e| SignError::Invalid(e.to_string()))?;
        let (instructions, signature) = sign(signable, &params)
            .map_err(|e| SignError::Invalid(e.to_string()))?
            .into_parts();
        let (new_headers, _params) = instructions.into_parts();
        for header in new_headers {
            let name = HeaderName::from_static(header.name());
            let mut value = HeaderValue::from_str(header.value())
                .map_err(|e| SignError::Invalid(e.to_string()))?;
            value.set_sensitive(header.sensitive());
            headers.insert(name, value);
        }
        Ok(signature)
    }

    /// `Host` (when absent: from the URI, as botocore signs it) and the `SigV4` headers, as a
    /// request is sent: the one home of what is signed, for the proof's preview too.
    ///
    /// # Errors
    /// As [`Signer::sign`].
    pub fn sign_as_sent(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &[u8],
        time: SystemTime,
    ) -> Result<String, SignError> {
        if !headers.contains_key(HOST) {
            if let Some(host) =
                Transport::host_header(uri).and_then(|h| HeaderValue::from_str(&h).ok())
            {
                headers.insert(HOST, host);
            }
        }
        self.sign(method, uri, headers, SignableBody::Bytes(body), time)
    }

    /// The signer of the event-stream messages of a request whose signature was `seed`: each
    /// message is signed in a chain from the one before (the first from the seed), with the
    /// credentials in use now.
    ///
    /// # Errors
    /// `NoCredentials`.
    pub fn chain(&self, seed: String) -> Result<ChainSigner, SignError> {
        Ok(ChainSigner {
            identity: self.identity()?,
            region: self.region.clone(),
            service: self.service.clone(),
            last: seed,
        })
    }
}

/// Signs the messages of one event-stream request body, in order (`aws-sigv4`'s
/// `event_stream::sign_message`): each becomes the payload of an outer message carrying
/// `:date` and `:chunk-signature`, and the signed empty message ends the chain.
pub struct ChainSigner {
    identity: Arc<Identity>,
    region: String,
    service: String,
    last: String,
}

impl ChainSigner {
    fn params(
        &self,
        time: SystemTime,
    ) -> Result<aws_sigv4::event_stream::SigningParams<'_>, SignError> {
        v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(())
            .build()
            .map_err(|e| SignError::Invalid(e.to_string()))
    }

    /// `message` wrapped and signed at `time`, continuing the chain.
    ///
    /// # Errors
    /// `Invalid` when the message cannot be encoded.
    pub fn sign(&mut self, message: &Message, time: SystemTime) -> Result<Message, SignError> {
        let params = self.params(time)?;
        let (signed, signature) =
            aws_sigv4::event_stream::sign_message(message, &self.last, &params)
                .map_err(|e| SignError::Invalid(e.to_string()))?
                .into_parts();
        self.last = signature;
        Ok(signed)
    }

    /// The signed empty message that ends the chain, at `time`.
    ///
    /// # Errors
    /// `Invalid` when it cannot be signed.
    pub fn sign_end(&mut self, time: SystemTime) -> Result<Message, SignError> {
        let params = self.params(time)?;
        let (signed, signature) = aws_sigv4::event_stream::sign_empty_message(&self.last, &params)
            .map_err(|e| SignError::Invalid(e.to_string()))?
            .into_parts();
        self.last = signature;
        Ok(signed)
    }

    /// The signature of the last message signed (the seed before the first).
    #[must_use]
    pub fn last_signature(&self) -> &str {
        &self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn signed(token: Option<&str>) -> (HeaderMap, String) {
        let signer = Signer::new("us-east-1", "sagemaker");
        signer.set_credentials("AK", "SK", token);
        sign_request(&signer).unwrap()
    }

    /// The headers and signature `signer` gives a `POST` of `b"x"` to an endpoint at a fixed
    /// time.
    fn sign_request(signer: &Signer) -> Result<(HeaderMap, String), SignError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            HeaderValue::from_static("runtime.sagemaker.us-east-1.amazonaws.com"),
        );
        let uri: Uri = "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/e/invocations-response-stream"
            .parse()
            .unwrap();
        // 2026-12-01T21:13:33Z
        let time = UNIX_EPOCH + Duration::from_secs(1_796_159_613);
        let signature = signer.sign(
            &Method::POST,
            &uri,
            &mut headers,
            SignableBody::Bytes(b"x"),
            time,
        )?;
        Ok((headers, signature))
    }

    #[test]
    fn matches_botocore() {
        // botocore 1.43.11 signed this very request (credentials AK/SK, body b"x") with this
        // signature: SignedHeaders=host;x-amz-date.
        let (headers, signature) = signed(None);
        assert_eq!(headers["x-amz-date"], "20261201T211333Z");
        assert_eq!(
            signature,
            "ef05d0cdb2526dd37969b267cf786b5c6867a3f233535b7ac8ee705b077c492f"
        );
        let auth = headers["authorization"].to_str().unwrap();
        assert!(auth.contains("SignedHeaders=host;x-amz-date,"), "{auth}");
    }

    #[test]
    fn temporary_credentials_sign_their_token() {
        let (headers, _) = signed(Some("TOKEN"));
        assert_eq!(headers["x-amz-security-token"], "TOKEN");
        let auth = headers["authorization"].to_str().unwrap();
        assert!(
            auth.contains("host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
    }

    #[test]
    fn no_credentials_is_an_error() {
        let err = sign_request(&Signer::new("us-east-1", "sagemaker")).unwrap_err();
        assert_eq!(err, SignError::NoCredentials);
    }
}
