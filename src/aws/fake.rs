//! A fake AWS endpoint for in-process tests of the engine and the executor: every request a
//! tool or an executor step would send (service, action, region and the rendered parameters)
//! is recorded and answered by a function the test gives, as the decoded document the real
//! protocol code would have produced. Items and pagination are then gathered exactly like
//! [`super::call::fetch`] does for one page.

use std::sync::Mutex;

use serde_json::Value;

use super::AwsError;
use super::call::{AwsCaller, Fetch, Fetched};
use super::protocol::{lookup, render_request};
use crate::BoxFuture;

/// One request sent to the fake endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCall {
    pub service: String,
    pub action: String,
    /// The region the request was sent to.
    pub region: String,
    /// The request's parameters, rendered from the tool's template and the arguments.
    pub params: Value,
}

type Answer = dyn Fn(&FakeCall) -> Result<Value, AwsError> + Send + Sync;

pub struct FakeAws {
    answer: Box<Answer>,
    calls: Mutex<Vec<FakeCall>>,
}

impl FakeAws {
    /// An endpoint that answers each request with `answer`.
    pub fn new(
        answer: impl Fn(&FakeCall) -> Result<Value, AwsError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            answer: Box::new(answer),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many requests named `action`.
    pub fn count(&self, action: &str) -> usize {
        self.calls().iter().filter(|c| c.action == action).count()
    }

    /// An error as AWS would answer it (`code`, HTTP 400).
    pub fn error(service: &str, code: &str) -> AwsError {
        AwsError::Service {
            service: service.into(),
            status: 400,
            code: code.into(),
            message: format!("{code} (fake endpoint)"),
        }
    }
}

impl AwsCaller for FakeAws {
    fn fetch<'a>(&'a self, r: Fetch<'a>) -> BoxFuture<'a, Result<Fetched, AwsError>> {
        let Fetch {
            spec,
            items_path,
            env,
            args,
            ..
        } = r;
        Box::pin(async move {
            let call = FakeCall {
                service: spec.service.clone(),
                action: spec.action.clone(),
                region: env.region.clone(),
                params: Value::Object(render_request(&spec.request, args, env)),
            };
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(call.clone());
            let page = (self.answer)(&call)?;
            let mut out = Fetched {
                pages: 1,
                ..Fetched::default()
            };
            match items_path {
                Some(path) => match lookup(&page, path) {
                    Some(Value::Array(a)) => out.items.extend(a.iter().cloned()),
                    Some(Value::Null) | None => {}
                    Some(one) => out.items.push(one.clone()),
                },
                None => out.document = Some(page),
            }
            Ok(out)
        })
    }
}
