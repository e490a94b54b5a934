//! What every service and response future of one layer shares, behind one `Arc`.

use std::sync::Arc;

use crate::rejection::OnRejection;
use crate::verify::CallbackVerifier;

pub(crate) struct Shared<R> {
    pub(crate) verifier: CallbackVerifier,
    pub(crate) store: R,
    pub(crate) on_rejection: Arc<dyn OnRejection>,
}

impl<R: Clone> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            store: self.store.clone(),
            on_rejection: Arc::clone(&self.on_rejection),
        }
    }
}
