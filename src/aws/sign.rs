//! SigV4 signing of a reqwest request with aws-sigv4. The secret key is used here and nowhere
//! else; only the signature and (for temporary credentials) the session token header leave.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use super::AwsError;

/// Sign `req` in place for `service` in `region`.
pub fn sign_request(
    req: &mut reqwest::Request,
    creds: &Credentials,
    region: &str,
    service: &str,
) -> Result<(), AwsError> {
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        // S3 signs the path as sent (no double encoding, no normalisation) and wants the
        // payload hash in `x-amz-content-sha256`.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| AwsError::Signing(e.to_string()))?
        .into();
    let body: &[u8] = req.body().and_then(|b| b.as_bytes()).unwrap_or(&[]);
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        req.url().as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| AwsError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| AwsError::Signing(e.to_string()))?
        .into_parts();
    let (headers, _query) = instructions.into_parts();
    for h in headers {
        let name = reqwest::header::HeaderName::from_bytes(h.name().as_bytes())
            .map_err(|e| AwsError::Signing(e.to_string()))?;
        let mut value = reqwest::header::HeaderValue::from_str(h.value())
            .map_err(|e| AwsError::Signing(e.to_string()))?;
        value.set_sensitive(h.sensitive());
        req.headers_mut().insert(name, value);
    }
    Ok(())
}
