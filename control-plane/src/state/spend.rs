//! Prices of deployments and money budgets of client keys.

use serde::{Deserialize, Serialize};

/// What a deployment costs, in US dollars per 1M tokens; 0 is free (local models).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Price {
    /// US dollars per 1M input (prompt) tokens. Default 0.
    pub input_usd_per_mtok: f64,
    /// US dollars per 1M output (completion) tokens. Default 0.
    pub output_usd_per_mtok: f64,
}

impl Price {
    /// Whether both prices are 0.
    pub fn is_free(&self) -> bool {
        self.input_usd_per_mtok == 0.0 && self.output_usd_per_mtok == 0.0
    }

    /// LiteLLM's `input_cost_per_token`/`output_cost_per_token` (US dollars per token).
    pub fn per_token(input: f64, output: f64) -> Self {
        Self {
            input_usd_per_mtok: input * 1e6,
            output_usd_per_mtok: output * 1e6,
        }
    }

    /// Refuses negative or non-finite prices, naming `field`.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        for (name, v) in [
            ("input_usd_per_mtok", self.input_usd_per_mtok),
            ("output_usd_per_mtok", self.output_usd_per_mtok),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{field}.{name}: must be a number of 0 or more"));
            }
        }
        Ok(())
    }
}

// Prices are validated finite, so equality is total.
impl Eq for Price {}

/// A client key's money budgets, in US dollars, across all edges; 0 is no budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyBudget {
    /// Most spent per UTC day. Default 0 (none).
    pub usd_per_day: f64,
    /// Most spent per UTC calendar month. Default 0 (none).
    pub usd_per_month: f64,
}

impl KeyBudget {
    /// Refuses negative or non-finite budgets, naming `field`.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        for (name, v) in [
            ("usd_per_day", self.usd_per_day),
            ("usd_per_month", self.usd_per_month),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{field}.{name}: must be a number of 0 or more"));
            }
        }
        Ok(())
    }
}

// Budgets are validated finite, so equality is total.
impl Eq for KeyBudget {}
