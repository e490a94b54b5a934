//! What every service and response future of one layer shares, behind one `Arc`.

use std::sync::Arc;

use crate::rejection::OnRejection;
use crate::scheme::Scheme;

#[derive(Clone)]
pub(crate) struct Shared<R> {
    pub(crate) scheme: Scheme,
    pub(crate) store: R,
    pub(crate) on_rejection: Arc<dyn OnRejection>,
}
