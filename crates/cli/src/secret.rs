//! `--secret`: where the passphrase comes from, what is refused, and the exit code of a failed
//! handshake.
//!
//! The passphrase never comes from the command line: any user of the machine can read another's
//! arguments (`ps`, `/proc/PID/cmdline`), so `--secret=VALUE` is refused as a usage error that
//! says so. It comes from `--secret-file PATH` (its first line), else from the `UDPCHAT_SECRET`
//! environment variable, else from the terminal without echo. Encryption is on only when the
//! user says `--secret` (or `--secret-file`): a forgotten `UDPCHAT_SECRET` in the environment
//! never switches it on silently, and never off either (the chat warns that it is not encrypted).
//!
//! The key is derived here, once, with the real Argon2id parameters
//! ([`udpchat_secure::KdfParams::INTERACTIVE`]); the randomness of the handshake comes from the
//! operating system.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use udpchat_secure::{KdfParams, Psk, SecureConfig};

use crate::reliable_args::usage;

/// The environment variable the passphrase may come from.
pub const ENV: &str = "UDPCHAT_SECRET";

/// Exit code when the encrypted handshake failed: a different passphrase, a peer without
/// `--secret`, or no answer to the handshake.
pub const EXIT_HANDSHAKE_FAILED: u8 = 4;

/// The encryption flags of `udpchat chat`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// Encrypt and authenticate the chat with a passphrase both sides know. Takes no value: the
    /// passphrase comes from --secret-file, else $UDPCHAT_SECRET, else it is asked for on the
    /// terminal (not echoed). `--secret=VALUE` is refused: other users could read it in `ps`.
    #[arg(long, num_args = 0..=1, require_equals = true, value_name = "NO VALUE")]
    pub secret: Option<Option<String>>,

    /// Read the passphrase from the first line of PATH (turns on --secret).
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// Whether the chat is encrypted.
    pub fn enabled(&self) -> bool {
        self.secret.is_some() || self.secret_file.is_some()
    }

    /// Refuses a passphrase on the command line, and encryption with `--plain` (bare datagrams
    /// have no framing to seal, and `nc` could not read them anyway).
    pub fn check(&self, plain: bool) -> Result<(), clap::Error> {
        if let Some(Some(_)) = &self.secret {
            return Err(usage(
                "--secret takes no value on the command line: other users of this machine can \
                 read command lines (ps). Give --secret alone and type the passphrase when asked, \
                 or set UDPCHAT_SECRET, or use --secret-file PATH",
            ));
        }
        if plain && self.enabled() {
            return Err(usage(
                "--secret cannot be used with --plain: bare datagrams carry no header to seal, \
                 and nc or socat could not read encrypted ones",
            ));
        }
        Ok(())
    }

    /// A warning to show when the environment holds a passphrase that is not used.
    pub fn warning(&self) -> Option<&'static str> {
        let set = std::env::var_os(ENV).is_some_and(|v| !v.is_empty());
        (set && !self.enabled()).then_some(
            "UDPCHAT_SECRET is set but --secret is not given: this chat is NOT encrypted",
        )
    }

    /// The wrapper's configuration: the key from the passphrase and a random seed. `None` when
    /// encryption is off.
    pub fn config(&self) -> Result<Option<SecureConfig>> {
        if !self.enabled() {
            return Ok(None);
        }
        let passphrase = self.passphrase()?;
        let psk = Psk::derive(&passphrase, KdfParams::INTERACTIVE)
            .context("cannot derive the key from the passphrase")?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| anyhow::anyhow!("cannot draw random bytes from the system: {e}"))?;
        Ok(Some(SecureConfig { psk, seed }))
    }

    fn passphrase(&self) -> Result<String> {
        if let Some(path) = &self.secret_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --secret-file {}", path.display()))?;
            return Ok(text.lines().next().unwrap_or_default().to_owned());
        }
        if let Some(value) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
            return value
                .into_string()
                .map_err(|_| anyhow::anyhow!("{ENV} is not valid UTF-8"));
        }
        // rpassword reads the controlling terminal, not stdin, so piped input stays lines.
        if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
            bail!(
                "--secret needs the passphrase: no terminal to ask on, so set {ENV} or use \
                 --secret-file PATH"
            );
        }
        rpassword::prompt_password("udpchat: passphrase (not shown): ")
            .context("cannot read the passphrase from the terminal")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn args(secret: Option<Option<&str>>, file: Option<&str>) -> SecretArgs {
        SecretArgs {
            secret: secret.map(|v| v.map(str::to_owned)),
            secret_file: file.map(PathBuf::from),
        }
    }

    #[test]
    fn a_value_on_the_command_line_is_refused_with_the_reason() {
        let err = args(Some(Some("hunter2")), None).check(false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("ps"), "{text}");
        assert!(
            !text.contains("hunter2"),
            "the refusal must not repeat the secret"
        );
        assert!(args(Some(None), None).check(false).is_ok());
    }

    #[test]
    fn encryption_is_on_only_when_asked_for() {
        assert!(!args(None, None).enabled());
        assert!(args(Some(None), None).enabled());
        assert!(args(None, Some("f")).enabled());
        assert!(args(Some(None), None).check(true).is_err());
    }
}
