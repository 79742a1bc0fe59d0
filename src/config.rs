//! One typed configuration: command-line flags with environment fallbacks. Each field's doc comment
//! is its `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use kwi_features::ingest::InputFormat;
use kwi_features::{Frequency, Platform};

/// Digitallz Keywords: keyword search-volume forecasting and competition service.
#[derive(Debug, Parser)]
#[command(name = "kwi", version, about)]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where data lives. Nothing set means an SQLite file in the data directory and an in-process cache.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Database URL: `postgres://user@host/db` or `sqlite:PATH`. Default: SQLite file `kwi.db` in the data directory
    #[arg(long, env = "KWI_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Redis URL (`redis://127.0.0.1:6379`). Default: in-process cache
    #[arg(long, env = "KWI_REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Directory for the embedded database and model artifacts
    #[arg(long, env = "KWI_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
}

impl GlobalOpts {
    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        kwi_store::url_or_embedded(self.database_url.as_deref(), &self.data_dir)
    }
}

/// Subcommands.
// Parsed once per process: the variants' sizes do not matter, boxing them would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (applies migrations; loads sample data into an empty store)
    Serve(ServeArgs),
    /// Apply database migrations and exit
    Migrate,
    /// Import observation files (CSV, Parquet, Arrow IPC) into the store, all or nothing
    Import(ImportArgs),
    /// Export stored observations or persisted predictions as an Arrow IPC stream or Parquet file
    Export(ExportArgs),
    /// Manage users without a running server (create prints the new user's API key last)
    Users(UsersArgs),
    /// Manage API keys without a running server
    Keys(KeysArgs),
    /// Collect keywords from a marketplace API now (`kwi collect replay` re-parses kept pages)
    Collect(CollectArgs),
    /// Run the collection queue and the watch-list scheduler: claim jobs, collect, write (until
    /// Ctrl-C / SIGTERM)
    Worker(WorkerArgs),
    /// Watched keywords, collected on their cadence by `kwi worker` / `kwi serve --worker`
    Watch(WatchArgs),
    /// Write a consistent copy of the embedded (SQLite) database while it is in use
    Backup(BackupArgs),
    /// Put a backup in place of the embedded database (the server stopped; the old file is kept)
    Restore(RestoreArgs),
}

/// `kwi backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The backup file to write (must not exist)
    #[arg(long)]
    pub out: PathBuf,
}

/// `kwi restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The backup file (from `kwi backup`)
    #[arg(long)]
    pub from: PathBuf,
    /// Replace an existing database (it is kept beside, renamed `*.before-restore-<time>`)
    #[arg(long)]
    pub force: bool,
}

/// Marketplace API credentials and limits (environment variables; never logged).
#[derive(Debug, Clone, Args)]
pub struct SourceOpts {
    /// Etsy Open API base URL
    #[arg(
        long,
        env = "KWI_ETSY_BASE_URL",
        default_value = "https://openapi.etsy.com",
        hide_env_values = true
    )]
    pub etsy_base_url: String,
    /// Etsy `keystring:shared_secret`
    #[arg(long, env = "KWI_ETSY_API_KEY", hide_env_values = true)]
    pub etsy_api_key: Option<String>,
    /// Etsy requests per second (Etsy's default limit)
    #[arg(long, env = "KWI_ETSY_PER_SECOND", default_value_t = 10.0)]
    pub etsy_per_second: f64,
    /// Etsy requests per UTC day, shared by every worker (Etsy's default limit)
    #[arg(long, env = "KWI_ETSY_PER_DAY", default_value_t = crate::collect::etsy::DEFAULT_PER_DAY)]
    pub etsy_per_day: i64,
    /// Etsy result pages read per keyword (100 listings each; offsets stop at 12,000)
    #[arg(long, env = "KWI_ETSY_PAGES", default_value_t = 1)]
    pub etsy_pages: u32,
    /// eBay API base URL (the Browse API and the OAuth token endpoint)
    #[arg(
        long,
        env = "KWI_EBAY_BASE_URL",
        default_value = "https://api.ebay.com",
        hide_env_values = true
    )]
    pub ebay_base_url: String,
    /// eBay OAuth client id (App ID)
    #[arg(long, env = "KWI_EBAY_CLIENT_ID", hide_env_values = true)]
    pub ebay_client_id: Option<String>,
    /// eBay OAuth client secret (Cert ID)
    #[arg(long, env = "KWI_EBAY_CLIENT_SECRET", hide_env_values = true)]
    pub ebay_client_secret: Option<String>,
    /// eBay marketplace searched (X-EBAY-C-MARKETPLACE-ID)
    #[arg(long, env = "KWI_EBAY_MARKETPLACE", default_value = "EBAY_US")]
    pub ebay_marketplace: String,
    /// eBay buying options counted as competing items (eBay counts FIXED_PRICE only unless told)
    #[arg(
        long,
        env = "KWI_EBAY_BUYING_OPTIONS",
        default_value = "FIXED_PRICE|AUCTION"
    )]
    pub ebay_buying_options: String,
    /// eBay requests per second (eBay publishes no per-second Browse limit)
    #[arg(long, env = "KWI_EBAY_PER_SECOND", default_value_t = 5.0)]
    pub ebay_per_second: f64,
    /// eBay requests per UTC day, shared by every worker (eBay's Browse default limit)
    #[arg(long, env = "KWI_EBAY_PER_DAY", default_value_t = crate::collect::ebay::DEFAULT_PER_DAY)]
    pub ebay_per_day: i64,
    /// eBay result pages read per keyword (200 items each; offsets stop at 10,000)
    #[arg(long, env = "KWI_EBAY_PAGES", default_value_t = 1)]
    pub ebay_pages: u32,
    /// Amazon SP-API regional endpoint
    #[arg(
        long,
        env = "KWI_SPAPI_BASE_URL",
        default_value = "https://sellingpartnerapi-na.amazon.com",
        hide_env_values = true
    )]
    pub spapi_base_url: String,
    /// Login with Amazon token endpoint
    #[arg(
        long,
        env = "KWI_SPAPI_TOKEN_URL",
        default_value = "https://api.amazon.com/auth/o2/token",
        hide_env_values = true
    )]
    pub spapi_token_url: String,
    /// SP-API app's LWA client id
    #[arg(long, env = "KWI_SPAPI_CLIENT_ID", hide_env_values = true)]
    pub spapi_client_id: Option<String>,
    /// SP-API app's LWA client secret
    #[arg(long, env = "KWI_SPAPI_CLIENT_SECRET", hide_env_values = true)]
    pub spapi_client_secret: Option<String>,
    /// The seller's LWA refresh token
    #[arg(long, env = "KWI_SPAPI_REFRESH_TOKEN", hide_env_values = true)]
    pub spapi_refresh_token: Option<String>,
    /// Marketplace id (ATVPDKIKX0DER: amazon.com)
    #[arg(long, env = "KWI_SPAPI_MARKETPLACE", default_value = "ATVPDKIKX0DER")]
    pub spapi_marketplace: String,
    /// SP-API requests per second (searchCatalogItems: 2)
    #[arg(long, env = "KWI_SPAPI_PER_SECOND", default_value_t = 2.0)]
    pub spapi_per_second: f64,
    /// SP-API requests per UTC day (our own cap: the operation has no daily quota)
    #[arg(long, env = "KWI_SPAPI_PER_DAY", default_value_t = crate::collect::amazon::DEFAULT_PER_DAY)]
    pub spapi_per_day: i64,
    /// Seconds between two looks at a requested report's status (Brand Analytics)
    #[arg(long, env = "KWI_SPAPI_REPORT_POLL_SECS", default_value_t = 30)]
    pub spapi_report_poll_secs: u64,
    /// Longest wait for a requested report, in seconds (then the attempt is retried later)
    #[arg(long, env = "KWI_SPAPI_REPORT_TIMEOUT_SECS", default_value_t = 3600)]
    pub spapi_report_timeout_secs: u64,
    /// Largest report document read, in MB decompressed
    #[arg(long, env = "KWI_SPAPI_REPORT_MAX_MB", default_value_t = 4096)]
    pub spapi_report_max_mb: u64,
    /// Retries of one request after a transient failure (5xx, timeout, reset, per-second 429)
    #[arg(long, default_value_t = 4)]
    pub retries: usize,
    /// First retry delay in milliseconds (doubling, with jitter)
    #[arg(long, default_value_t = 500)]
    pub retry_min_ms: u64,
    /// Longest `Retry-After` honoured, in seconds
    #[arg(long, default_value_t = 60)]
    pub retry_after_cap_secs: u64,
    /// Timeout of one request in seconds
    #[arg(long, default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Claims of one job before it goes to the dead letters
    #[arg(long, default_value_t = 5)]
    pub job_attempts: i32,
    /// Seconds a claimed job is held before another worker may take it over
    #[arg(long, default_value_t = 300)]
    pub lease_secs: u64,
    /// Jobs worked on at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds between the scheduler's looks at the watch list (`kwi worker`, `kwi serve --worker`)
    #[arg(long, env = "KWI_SCHEDULE_SECS", default_value_t = 60)]
    pub schedule_secs: u64,
}

/// `kwi collect`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CollectArgs {
    /// `replay`: parse the kept pages again and rewrite their observations
    #[command(subcommand)]
    pub command: Option<CollectCommand>,
    /// Source: etsy, ebay or amazon
    #[arg(long)]
    pub source: Option<kwi_store::Source>,
    /// Keywords, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub keywords: Vec<String>,
    /// A file with one keyword per line (added to --keywords)
    #[arg(long)]
    pub keywords_file: Option<PathBuf>,
    /// The period the observations are for (default: Monday of this ISO week, UTC; with
    /// --report, the Sunday of the report's week, by default the last week that has ended)
    #[arg(long)]
    pub period: Option<chrono::NaiveDate>,
    /// Collect a report instead of keywords: `search-terms` (Amazon Brand Analytics, weekly)
    #[arg(long, conflicts_with_all = ["keywords", "keywords_file"])]
    pub report: Option<Report>,
    /// Wait for jobs rescheduled up to this many seconds ahead (longer waits are reported)
    #[arg(long, default_value_t = 120)]
    pub patience_secs: u64,
    /// Sources' settings
    #[command(flatten)]
    pub sources: SourceOpts,
}

/// A source's report (`kwi collect --report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Report {
    /// Amazon Brand Analytics Search Terms: each term's weekly search frequency rank and its top
    /// clicked products' shares
    SearchTerms,
}

/// `kwi collect` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CollectCommand {
    /// Parse every kept page of a source again and write its observations (one transaction per job)
    Replay {
        /// Source
        #[arg(long)]
        source: kwi_store::Source,
        /// Sources' settings
        #[command(flatten)]
        sources: SourceOpts,
    },
}

/// `kwi worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Sources' settings
    #[command(flatten)]
    pub sources: SourceOpts,
}

/// `kwi watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// What to do
    #[command(subcommand)]
    pub command: WatchCommand,
}

/// `kwi watch` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum WatchCommand {
    /// Watch keywords (a keyword already watched takes the new cadence)
    Add {
        /// Source: etsy, ebay or amazon
        #[arg(long)]
        source: kwi_store::Source,
        /// Keywords, comma-separated
        #[arg(long, value_delimiter = ',', required = true)]
        keywords: Vec<String>,
        /// daily or weekly (UTC)
        #[arg(long, default_value = "weekly")]
        cadence: kwi_store::Cadence,
        /// The owner's email (default: admin@localhost, the first admin `kwi serve` creates)
        #[arg(long, default_value = "admin@localhost")]
        user: String,
    },
    /// List watched keywords (every user's unless --user is given)
    List {
        /// Only this user's (email)
        #[arg(long)]
        user: Option<String>,
    },
    /// Stop watching keywords
    Remove {
        /// Source: etsy, ebay or amazon
        #[arg(long)]
        source: kwi_store::Source,
        /// Keywords, comma-separated
        #[arg(long, value_delimiter = ',', required = true)]
        keywords: Vec<String>,
        /// The owner's email
        #[arg(long, default_value = "admin@localhost")]
        user: String,
    },
}

/// `kwi users`.
#[derive(Debug, Clone, Args)]
pub struct UsersArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// `kwi users` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// Create a user with a first API key (printed once, as the last line of the output)
    Create(CreateUserArgs),
    /// List users
    List,
}

/// `kwi users create`.
#[derive(Debug, Clone, Args)]
pub struct CreateUserArgs {
    /// Email (unique, case-insensitive)
    #[arg(long)]
    pub email: String,
    /// customer, analyst or admin
    #[arg(long, default_value = "customer")]
    pub role: kwi_store::Role,
    /// free, pro, business or internal
    #[arg(long, default_value = "free")]
    pub plan: kwi_store::PlanName,
    /// Name of an environment variable holding the password (never pass one on the command
    /// line: it would show in `ps` and the shell history). Without it the user signs in with
    /// the API key (or OpenID Connect) only
    #[arg(long)]
    pub password_env: Option<String>,
}

/// `kwi keys`.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// `kwi keys` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a user (printed once, as the last line of the output)
    Create {
        /// The user's email
        #[arg(long)]
        email: String,
        /// A label for the key
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List a user's API keys
    List {
        /// The user's email
        #[arg(long)]
        email: String,
    },
    /// Revoke an API key at once (its id, as `kwi keys list` or `GET /v1/me/api-keys` shows it)
    Revoke {
        /// Key id
        id: uuid::Uuid,
    },
}

/// `kwi export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// What to export
    pub what: crate::export::ExportKind,
    /// Output file (written to a temporary name beside it, renamed into place when complete)
    #[arg(long, short)]
    pub out: PathBuf,
    /// arrow (IPC stream) or parquet; default: from the --out extension (.parquet → parquet), else arrow
    #[arg(long)]
    pub format: Option<crate::export::ExportFormat>,
    /// Only this platform
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Only these keywords (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub keywords: Vec<String>,
    /// From this date (YYYY-MM-DD; observations: period_start, predictions: data_as_of)
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Up to this date (YYYY-MM-DD, inclusive)
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Overwrite --out if it exists
    #[arg(long)]
    pub force: bool,
}

/// `kwi serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "KWI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not load the built-in sample data into an empty store
    #[arg(long, env = "KWI_NO_SAMPLE")]
    pub no_sample: bool,
    /// Seconds between checks of the model registry for a newly activated model
    #[arg(long, env = "KWI_MODEL_POLL_SECS", default_value_t = 5)]
    pub model_poll_secs: u64,
    /// Milliseconds between checks of the store for new data (a newly imported keyword's cached
    /// forecasts are replaced within this interval)
    #[arg(long, env = "KWI_DATA_POLL_MS", default_value_t = 1000)]
    pub data_poll_ms: u64,
    /// Seconds between checks for new data or models that make the stored insights (trends,
    /// opportunity, competition) stale; they are recomputed only when something changed
    #[arg(long, env = "KWI_INSIGHTS_CHECK_SECS", default_value_t = 300)]
    pub insights_check_secs: u64,
    /// MiB of forecasts cached in process: the whole cache without Redis; with Redis, a near cache
    /// in front of it that answers repeated requests without a Redis round trip (0 turns the near
    /// cache off)
    #[arg(long, env = "KWI_CACHE_MB", default_value_t = 256)]
    pub cache_mb: u64,
    /// `off` lets every request in as an unmetered admin: only for measuring what authentication
    /// costs (benches/load); never expose such a server
    #[arg(long, env = "KWI_AUTH", default_value = "on", value_parser = ["on", "off"])]
    pub auth: String,
    /// Secret (32+ characters) signing access tokens; default: one generated on first start and
    /// kept in the database, so every instance on it shares it
    #[arg(long, env = "KWI_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The URL browsers reach this service at (for the OpenID Connect callback and the printed
    /// dashboard link); default `http://<listen address>`
    #[arg(long, env = "KWI_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// OpenID Connect issuer URL (e.g. `https://accounts.example.com`); with client id and
    /// secret it turns on "Sign in with SSO"
    #[arg(long, env = "KWI_OIDC_ISSUER", requires_all = ["oidc_client_id", "oidc_client_secret"])]
    pub oidc_issuer: Option<String>,
    /// OpenID Connect client id
    #[arg(long, env = "KWI_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// OpenID Connect client secret
    #[arg(long, env = "KWI_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Require an admin's credentials for `/metrics` (default: public, for Prometheus)
    #[arg(long, env = "KWI_PRIVATE_METRICS")]
    pub private_metrics: bool,
    /// Origins (`https://app.example.com`, comma-separated, or `*`) whose browser scripts may call
    /// the API (CORS); default none: the dashboard is served from the same origin and needs none
    #[arg(long = "cors-origin", env = "KWI_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Seconds a client has to send a request's whole header before the connection is closed
    #[arg(long, env = "KWI_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request body may send nothing before it is abandoned (408)
    #[arg(long, env = "KWI_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// KiB a request's header may take in all (431 beyond; at least 8)
    #[arg(long, env = "KWI_MAX_HEADER_KB", default_value_t = 64)]
    pub max_header_kb: u64,
    /// Also run the collection queue and the watch-list scheduler in this process (as `kwi worker`)
    #[arg(long, env = "KWI_WORKER")]
    pub worker: bool,
    /// Sources' settings (their daily limits are what `/v1/collector/status` counts quota against)
    #[command(flatten)]
    pub sources: SourceOpts,
}

/// `kwi import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Files to import (.csv, .parquet, .arrow/.ipc/.feather, .arrows)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// File layout: auto, long, gtrends (one column per keyword) or m4 (one row per series)
    #[arg(long, default_value = "auto")]
    pub format: InputFormat,
    /// Platform for files that do not name one (gtrends files default to google, m4 files to benchmark)
    #[arg(long)]
    pub platform: Option<Platform>,
    /// m4 files: date of each series' first value (YYYY-MM-DD)
    #[arg(long, conflicts_with = "end")]
    pub start: Option<NaiveDate>,
    /// m4 files: date of each series' last value (YYYY-MM-DD)
    #[arg(long)]
    pub end: Option<NaiveDate>,
    /// m4 files: period length (daily or weekly)
    #[arg(long, default_value = "weekly")]
    pub freq: Frequency,
    /// Source label stored with each row (default: the file name without extension)
    #[arg(long)]
    pub source: Option<String>,
    /// Import the valid rows even if some are rejected (the rejected ones are still reported)
    #[arg(long)]
    pub skip_invalid: bool,
    /// Hide the progress bar
    #[arg(long)]
    pub quiet: bool,
}
