//! What one serving thread serves right now: the `HttpApp` of the running
//! generation, or nothing yet (a service with no app installed answers 503).
//! An update swaps the whole `HttpApp`; a request holds the one it started
//! with to its end, so in-flight requests finish on the old app.

use std::sync::{Arc, RwLock};

use super::HttpApp;

#[derive(Default)]
pub struct AppSlot(RwLock<Option<Arc<HttpApp>>>);

impl AppSlot {
    pub fn new(app: Option<Arc<HttpApp>>) -> Arc<Self> {
        Arc::new(Self(RwLock::new(app)))
    }

    pub fn get(&self) -> Option<Arc<HttpApp>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, app: Option<Arc<HttpApp>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = app;
    }
}
