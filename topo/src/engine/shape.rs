//! Changing the shaping of a link while traffic flows.

use super::emulator::emu_config;
use super::{Dir, ImpairMech, Running, TopoError};
use crate::config::Shape;
use crate::state;
use crate::tc;

impl Running {
    /// Changes the shaping of a link while traffic flows (tc change, emulator reload).
    /// Fields of `shape` replace the current ones for the chosen direction(s).
    pub fn shape(&mut self, link: &str, dir: Dir, shape: &Shape) -> Result<(), TopoError> {
        let _lock = self.state.lock(&self.info.topology.name, true)?;
        let t = self.info.topology.clone();
        let Some(l) = t.link(link) else {
            return Err(TopoError::unknown_link(&t, link));
        };
        let netem = self.info.netem;
        let lr = self
            .info
            .links
            .iter_mut()
            .find(|x| x.name == link)
            .ok_or_else(|| TopoError::NotUp(t.name.clone()))?;
        if shape.impaired() && lr.impair == ImpairMech::None && !netem {
            return Err(TopoError::Unsupported(format!(
                "link `{link}` was brought up without the delay/loss emulator (this kernel has no netem); give it a delay or loss in the topology file, or `emulate = true`"
            )));
        }
        if matches!(dir, Dir::Ab | Dir::Both) {
            let cmds = tc::commands(&l.a.ifname, &mut lr.egress_a, shape, netem);
            tc::run_batch(&t.ns_name(&l.a.node), &cmds)?;
            lr.shape_ab = shape.clone();
        }
        if matches!(dir, Dir::Ba | Dir::Both) {
            let cmds = tc::commands(&l.b.ifname, &mut lr.egress_b, shape, netem);
            tc::run_batch(&t.ns_name(&l.b.node), &cmds)?;
            lr.shape_ba = shape.clone();
        }
        if netem
            && lr.impair == ImpairMech::None
            && (lr.shape_ab.impaired() || lr.shape_ba.impaired())
        {
            lr.impair = ImpairMech::Netem;
        }
        if let Some(emu) = &lr.emu {
            let cfg = emu_config(emu, lr);
            cfg.write_file(&emu.config).map_err(|e| TopoError::Emu {
                link: link.into(),
                reason: e.to_string(),
            })?;
            if state::proc_start_time(emu.pid) != Some(emu.start) {
                return Err(TopoError::Emu {
                    link: link.into(),
                    reason: format!("emulator process {} is gone", emu.pid),
                });
            }
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(emu.pid),
                nix::sys::signal::Signal::SIGHUP,
            )
            .map_err(|e| TopoError::Emu {
                link: link.into(),
                reason: format!("SIGHUP to {}: {e}", emu.pid),
            })?;
        }
        tracing::info!(link, ?dir, "shaping changed: {}", describe_shape(shape));
        self.state.write_json(&t.name, "running.json", &self.info)?;
        Ok(())
    }
}

/// Human summary of a shape.
pub fn describe_shape(s: &Shape) -> String {
    let mut v = Vec::new();
    match s.rate_bps {
        Some(r) => v.push(format!(
            "rate {} burst {}B",
            crate::units::fmt_rate(r),
            s.effective_burst().unwrap_or(0)
        )),
        None => v.push("unlimited".into()),
    }
    if s.delay_us > 0 {
        v.push(format!("delay {}", crate::units::fmt_us(s.delay_us)));
    }
    if s.jitter_us > 0 {
        v.push(format!("jitter {}", crate::units::fmt_us(s.jitter_us)));
    }
    if s.loss_ppm > 0 {
        v.push(format!("loss {}%", s.loss_ppm as f64 / 10_000.0));
    }
    v.join(" ")
}
