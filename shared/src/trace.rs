//! Trace context across the job hop (PRODUCT.md §10): the W3C
//! `traceparent` of whatever caused a job — an API request, or a job that
//! queued another — is written with the job's outbox row, with the request
//! id, so the relay and the job continue that trace and the job's logs name
//! the request.
//!
//! The API and the workers set the context for a request or a job attempt
//! ([`scope`]); [`crate::outbox`] reads it ([`current`]) when it writes a
//! row. With OTLP export on, the ids are the exported spans' own (see
//! `telemetry::continue_trace`); without, the trace id still travels, so
//! logs of the request and its jobs share it.

use std::fmt;

/// A W3C trace context: `00-{trace id}-{parent id}-{flags}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    /// The id of the span the next hop is a child of.
    pub parent_id: u64,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header value; `None` for anything that is not
    /// a valid version-00 value (all-zero ids are invalid by the spec).
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        // Version 00 has exactly four fields; a later version may add some.
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace, for work nothing upstream traced.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero(rand::random()),
            parent_id: nonzero(rand::random()),
            sampled: true,
        }
    }

    /// The same trace, one hop further (a new parent id).
    pub fn child(self) -> Self {
        Self {
            parent_id: nonzero(rand::random()),
            ..self
        }
    }

    /// The trace id as 32 hex digits, as logs and OTLP show it.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

fn nonzero<T: Default + PartialEq + From<u8>>(value: T) -> T {
    if value == T::default() {
        T::from(1)
    } else {
        value
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.parent_id,
            u8::from(self.sampled)
        )
    }
}

/// What a job queued now should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub traceparent: TraceParent,
    /// The API request behind it, directly or through earlier jobs.
    pub request_id: Option<String>,
}

tokio::task_local! {
    static CURRENT: Origin;
}

/// Runs `work` with `origin` as the context of the jobs it queues.
pub async fn scope<F: Future>(origin: Origin, work: F) -> F::Output {
    CURRENT.scope(origin, work).await
}

/// The context of the current request or job attempt, if any.
pub fn current() -> Option<Origin> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_traceparent_reads_and_writes_back_the_same() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(header);
        assert_eq!(
            parsed,
            Some(TraceParent {
                trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                parent_id: 0x00f0_67aa_0ba9_02b7,
                sampled: true,
            })
        );
        assert_eq!(parsed.map(|p| p.to_string()).as_deref(), Some(header));
        let child = parsed.map(TraceParent::child);
        assert_eq!(child.map(|c| c.trace_id), parsed.map(|p| p.trace_id));
        assert_ne!(child.map(|c| c.parent_id), parsed.map(|p| p.parent_id));
    }

    #[test]
    fn malformed_or_zero_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version may carry more fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }
}
