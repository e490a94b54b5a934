//! What every service and response future of one layer shares, behind one `Arc`.

use std::sync::Arc;

use crate::rejection::OnRejection;
use crate::verify::CallbackVerifier;

#[derive(Clone)]
pub(crate) struct Shared<R> {
    pub(crate) verifier: CallbackVerifier,
    pub(crate) store: R,
    pub(crate) on_rejection: Arc<dyn OnRejection>,
}
