//! The commands' shared pieces: where data goes, and logging.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

pub(crate) mod advise;
pub(crate) mod cluster;
pub(crate) mod deploy;
pub(crate) mod journal;
pub(crate) mod serve;

/// The platform data directory, where journals live unless told otherwise.
pub(crate) fn default_data_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("dev", "signalbox", "signalbox")
        .context("no home directory to put the data directory in; pass --data-dir")?;
    Ok(dirs.data_dir().to_path_buf())
}

/// A deployment directory, read and checked whole, or all its problems.
pub(crate) fn load_deployment(dir: &Path) -> Result<signalbox::deploy::Deployment> {
    signalbox::deploy::Deployment::load(dir).map_err(|problems| {
        anyhow::anyhow!(
            "{} has problems (signalbox validate {} lists them):\n{problems}",
            dir.display(),
            dir.display()
        )
    })
}

/// Where a command on a journal finds it, and under which deployment.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct JournalArgs {
    /// The journal's directory (default: the deployment's data directory
    /// with --config, else the platform data directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The deployment directory that writes the journal: its policies
    /// decide what a command decides. A deployment's journal is refused
    /// without it, and a demo's with it.
    #[arg(long = "config")]
    pub config: Option<PathBuf>,
}

/// A journal's directory and the deployment it belongs to, if any.
pub(crate) struct JournalPlace {
    pub dir: PathBuf,
    pub deployment: Option<signalbox::deploy::Deployment>,
}

impl JournalArgs {
    pub(crate) fn place(&self) -> Result<JournalPlace> {
        let deployment = self.config.as_deref().map(load_deployment).transpose()?;
        let dir = match (&self.data_dir, &deployment) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.data_dir(),
            (None, None) => default_data_dir()?,
        };
        Ok(JournalPlace { dir, deployment })
    }
}

/// `--since`: a duration back from now ("7d") or an RFC 3339 time.
pub(crate) fn parse_since(since: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    since
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    humantime::parse_duration(text)
                        .map_err(anyhow::Error::from)
                        .and_then(|d| Ok(chrono::Duration::from_std(d)?))
                        .map(|d| chrono::Utc::now() - d)
                })
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--since {text:?}: a duration back from now (7d) or an RFC 3339 time"
                    )
                })
        })
        .transpose()
}

/// The advisor `[advisor]` names: the deployment's signalbox.toml, or
/// else config.toml; recording beside the journal.
pub(crate) fn advisor(place: &JournalPlace) -> Result<signalbox::advisor::Advisor> {
    let config = match &place.deployment {
        Some(d) => d.server.advisor.clone(),
        None => {
            signalbox::config::Config::load(signalbox::config::config_path().as_deref())?.advisor
        }
    };
    let Some(config) = config else {
        anyhow::bail!(
            "no advisor: add [advisor] (url, model) to {}",
            match &place.deployment {
                Some(d) => d.dir.join("signalbox.toml").display().to_string(),
                None => "config.toml".into(),
            }
        );
    };
    Ok(signalbox::advisor::Advisor::new(&config, &place.dir)?)
}

impl JournalPlace {
    /// Who writes this journal, as the command was told.
    pub(crate) fn author(&self) -> signalbox::journal::author::Author {
        match &self.deployment {
            Some(d) => signalbox::journal::author::Author::deployment(&d.dir),
            None => signalbox::journal::author::Author::Demo,
        }
    }

    /// Refuses a journal another writer wrote (it would be read or decided
    /// under the wrong rules).
    pub(crate) fn check_author(&self) -> Result<()> {
        signalbox::journal::author::check(&self.dir, &self.author())?;
        Ok(())
    }
}

/// A new directory under the platform data directory, named for now.
pub(crate) fn fresh_dir(kind: &str, prefix: &str) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Ok(default_data_dir()?
        .join(kind)
        .join(format!("{prefix}-{stamp}")))
}

pub(crate) fn data_dir_or_default(dir: &Option<PathBuf>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.clone()),
        None => default_data_dir(),
    }
}

/// Logs go to a rolling file under the data directory, never the terminal.
pub(crate) fn init_logging(data_dir: &Path) -> Result<()> {
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let appender = tracing_appender::rolling::daily(&logs, "signalbox.log");
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNALBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(appender)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
    Ok(())
}
