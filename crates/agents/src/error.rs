//! The one error type of agent operations: which resource, which op, and why.

use std::time::Duration;

use crate::process::{ExitStatus, RunError};

pub use ha_config::agent::Op;
use ha_config::agent::SpecError;

/// Why a resource could not be built or an operation failed.
#[derive(thiserror::Error, Debug)]
pub enum AgentError {
    // The three ways a resource cannot be built here keep their own variants so callers match
    // one flat enum whatever stage failed; each carries ha-config's error of the same name.
    /// No built-in agent, script or unit answers to this name (`SpecError::NotFound`).
    #[error(transparent)]
    NotFound(SpecError),
    /// A program the agent needs is not installed here (`SpecError::Unavailable`).
    #[error(transparent)]
    Unavailable(SpecError),
    /// The arguments cannot work with this agent (`SpecError::InvalidArgs`).
    #[error(transparent)]
    InvalidArgs(SpecError),
    /// The script or systemctl ran and reported failure.
    #[error("{resource}: {op} failed with {status}{}", tail(stderr_tail))]
    Failed {
        /// The resource as written.
        resource: String,
        /// The operation.
        op: Op,
        /// Exit code or signal.
        status: ExitStatus,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// The operation exceeded its time limit and was killed.
    #[error("{resource}: {op} timed out after {after:?}{}", tail(stderr_tail))]
    Timeout {
        /// The resource as written.
        resource: String,
        /// The operation.
        op: Op,
        /// The limit that expired.
        after: Duration,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// The program could not be run at all.
    #[error("{resource}: {op}: {source}")]
    Exec {
        /// The resource as written.
        resource: String,
        /// The operation.
        op: Op,
        /// The process-level failure.
        #[source]
        source: RunError,
    },
    /// The kernel refused or could not be asked (netlink, packet socket).
    #[error("{resource}: {op}: {reason}")]
    System {
        /// The resource as written.
        resource: String,
        /// The operation.
        op: Op,
        /// What failed, with the OS error.
        reason: String,
    },
    /// The interface or prefix was omitted and cannot be inferred, or the interface does not exist.
    #[error("{resource}: {op}: {reason}")]
    Resolve {
        /// The resource as written.
        resource: String,
        /// The operation.
        op: Op,
        /// What is missing and how to write it explicitly.
        reason: String,
    },
}

impl From<SpecError> for AgentError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::NotFound { .. } => AgentError::NotFound(e),
            SpecError::Unavailable { .. } => AgentError::Unavailable(e),
            SpecError::InvalidArgs { .. } => AgentError::InvalidArgs(e),
        }
    }
}

fn tail(stderr_tail: &str) -> String {
    if stderr_tail.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {stderr_tail})")
    }
}

impl AgentError {
    /// The resource this error is about.
    pub fn resource(&self) -> &str {
        match self {
            AgentError::NotFound(e) | AgentError::Unavailable(e) | AgentError::InvalidArgs(e) => {
                e.resource()
            }
            AgentError::Failed { resource, .. }
            | AgentError::Timeout { resource, .. }
            | AgentError::Exec { resource, .. }
            | AgentError::System { resource, .. }
            | AgentError::Resolve { resource, .. } => resource,
        }
    }

    /// True when the error is about this machine (an agent or program not installed here)
    /// rather than about what haresources says: another node may well have it.
    pub fn depends_on_machine(&self) -> bool {
        matches!(
            self,
            AgentError::NotFound { .. } | AgentError::Unavailable { .. }
        )
    }

    /// True when the operation was killed for exceeding its time limit.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AgentError::Timeout { .. })
    }

    /// Map a `process::run` failure of `op` on `resource`.
    pub(crate) fn from_run(resource: &str, op: Op, err: RunError) -> AgentError {
        match err {
            RunError::Timeout { after, stderr, .. } => AgentError::Timeout {
                resource: resource.to_owned(),
                op,
                after,
                stderr_tail: crate::process::stderr_tail(&stderr),
            },
            source => AgentError::Exec {
                resource: resource.to_owned(),
                op,
                source,
            },
        }
    }
}
