//! AWS requests without a per-service SDK: SigV4 signing ([`sign`]) over reqwest, the query,
//! EC2 and JSON protocols ([`protocol`]), endpoints that follow the AWS SDK convention
//! ([`endpoint`]), bounded pagination ([`call`]) and the projection of answers into what a
//! tool returns ([`project`]).

pub mod call;
pub mod endpoint;
pub mod fake;
pub mod project;
pub mod protocol;
pub mod sign;

/// A failed AWS call, with the service's own error code where there is one.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{service} answered HTTP {status} {code}: {message}")]
    Service {
        service: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("could not reach {service} at {endpoint}: {message}")]
    Transport {
        service: String,
        endpoint: String,
        message: String,
    },
    #[error("could not sign the request: {0}")]
    Signing(String),
    #[error("{service} sent an answer airlock cannot read: {message}")]
    Decode { service: String, message: String },
}

impl AwsError {
    /// Access was refused by IAM (as opposed to a bad request or an outage).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, AwsError::Service { code, status, .. }
            if code.contains("AccessDenied") || code.contains("UnauthorizedOperation") || code.contains("NotAuthorized") || *status == 403)
    }
}
