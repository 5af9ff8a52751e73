//! The thread group operations run on. Their netlink, ARP and process work (a thousand
//! addresses are real work) then never holds the thread that times and sends heartbeats, and
//! runs at normal priority when that thread is realtime (see `realtime`).

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;

static AGENTS: OnceLock<Option<Handle>> = OnceLock::new();

/// Run `fut` on the agents' thread (started on first use); on the caller's runtime if that
/// thread could not be started (said once in the log).
pub fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match handle() {
        Some(h) => {
            h.spawn(fut);
        }
        None => {
            tokio::spawn(fut);
        }
    }
}

fn handle() -> Option<&'static Handle> {
    AGENTS
        .get_or_init(|| match start() {
            Ok(h) => Some(h),
            Err(e) => {
                crate::logcat::log(&crate::logcat::LogEvent::AgentsThreadFailed {
                    reason: &e.to_string(),
                });
                None
            }
        })
        .as_ref()
}

fn start() -> std::io::Result<Handle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("had-agents".into())
        .spawn(move || {
            crate::realtime::normal_priority_here();
            rt.block_on(std::future::pending::<()>());
        })?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs_elsewhere_at_normal_priority() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let here = std::thread::current().id();
        super::spawn(async move {
            let _ = tx.send((
                std::thread::current().id(),
                std::thread::current().name().map(str::to_string),
                crate::realtime::current_policy().0,
            ));
        });
        let (id, name, policy) = rx.await.expect("ran");
        assert_ne!(id, here);
        assert_eq!(name.as_deref(), Some("had-agents"));
        assert_eq!(policy, "SCHED_OTHER");
    }
}
