//! `SendArp::ip/iface`: Heartbeat's pseudo resource that only announces an address (which is
//! configured by other means) with gratuitous ARP when it starts. Same burst and refresh as
//! IPaddr (`[arp]` in had.toml); status is "running" between start and stop, kept in memory.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use ha_config::agent::SendArpPlan;

use crate::ip::IpResource;
use crate::{AgentError, ArpConfig, RunState};

/// A gratuitous-ARP-only resource.
#[derive(Debug)]
pub struct SendArpResource {
    inner: IpResource,
    active: AtomicBool,
}

impl SendArpResource {
    /// Parse `ip/iface` (IPv4; the interface is required, as in Heartbeat's agent).
    pub fn new(name: &str, args: &[String], arp: ArpConfig) -> Result<SendArpResource, AgentError> {
        Ok(Self::from_plan(SendArpPlan::new(name, args, arp)?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: SendArpPlan) -> Self {
        SendArpResource {
            inner: IpResource::from_plan(p.ip),
            active: AtomicBool::new(false),
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The address announced.
    pub fn addr(&self) -> IpAddr {
        self.inner.spec().addr
    }

    /// Send the burst (the first packet before returning) and start the refresh, if any.
    pub async fn start(&self) -> Result<(), AgentError> {
        self.inner.start_announcing().await?;
        self.active.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stop announcing; never fails.
    pub async fn stop(&self) -> Result<(), AgentError> {
        self.inner.stop_announcing();
        self.active.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Running between start and stop.
    pub async fn status(&self) -> Result<RunState, AgentError> {
        Ok(if self.active.load(Ordering::SeqCst) {
            RunState::Running
        } else {
            RunState::Stopped
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(arg: &str) -> Result<SendArpResource, AgentError> {
        SendArpResource::new("SendArp", &[arg.to_owned()], ArpConfig::default())
    }

    #[test]
    fn argument_forms() {
        let r = new("198.18.0.5/eth0").unwrap();
        assert_eq!(r.addr(), "198.18.0.5".parse::<IpAddr>().unwrap());
        for bad in [
            "198.18.0.5",
            "198.18.0.5/",
            "198.18.0.5/24/eth0",
            "x/eth0",
            "2001:db8::1/eth0",
        ] {
            assert!(new(bad).is_err(), "{bad}");
        }
        assert!(SendArpResource::new("SendArp", &[], ArpConfig::default()).is_err());
    }
}
