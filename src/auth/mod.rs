//! Credentials Routeplane presents UPSTREAM: a static key, or a subscription's OAuth token.
//!
//! Client keys (what callers present to Routeplane) are checked in `server.rs`, not here.
//! This module decides the headers that carry a provider's credential and any
//! provider-specific shaping of the body a subscription backend insists on.

use serde_json::Value;

use crate::error::Error;
use crate::protocol::Protocol;
use crate::registry::{Kind, Provider, Target};

/// The Anthropic API version sent with every Messages request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Credentials for every provider.
#[derive(Debug, Default)]
pub struct Auth {}

impl Auth {
    /// Headers that carry `target`'s credential and protocol requirements.
    pub fn headers(&self, target: &Target) -> Result<Vec<(String, String)>, Error> {
        let p = &target.provider;
        let mut h: Vec<(String, String)> = Vec::new();
        if target.protocol == Protocol::Anthropic {
            h.push(("anthropic-version".into(), ANTHROPIC_VERSION.into()));
        }
        match &p.key {
            Some(key) if target.protocol == Protocol::Anthropic => {
                h.push(("x-api-key".into(), key.expose().to_string()));
            }
            Some(key) => h.push(("authorization".into(), format!("Bearer {}", key.expose()))),
            None if p.kind == Kind::Subscription => {
                return Err(Error::LoginNeeded {
                    provider: p.id.clone(),
                    reason: "not logged in".into(),
                });
            }
            None => {}
        }
        h.extend(p.headers.iter().cloned());
        Ok(h)
    }

    /// True when the provider's backend needs the body rewritten (never byte passthrough).
    pub fn rewrites_body(&self, _p: &Provider) -> bool {
        false
    }

    /// True when the provider only answers streams (its non-streaming answers are collected).
    pub fn stream_only(&self, _p: &Provider) -> bool {
        false
    }

    /// Applies a provider's body rules to an upstream request.
    pub fn shape_body(&self, _p: &Provider, _body: &mut Value) {}
}
