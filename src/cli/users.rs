//! `kwi users …` and `kwi keys …`: account management on the store directly (no server needed).
//! Secrets are printed to stdout only, once; nothing secret goes to the log.

use std::sync::Arc;

use anyhow::{Context, bail};
use kwi_store::Store;

use crate::auth::{Auth, AuthConfig};
use crate::config::{GlobalOpts, KeysArgs, KeysCommand, UsersArgs, UsersCommand};

/// Runs `f` with the accounts service on the configured store, then writes its queued audit rows.
async fn with_auth<T>(
    global: &GlobalOpts,
    f: impl AsyncFnOnce(&Auth, &Arc<dyn Store>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = super::open_store(global).await?;
    let (auth, tasks) = Auth::start(store.clone(), None, AuthConfig::default()).await?;
    let out = f(&auth, &store).await;
    drop(auth);
    tasks.await.context("the audit writer failed")?;
    out
}

/// `kwi users`.
pub async fn users(global: &GlobalOpts, args: &UsersArgs) -> anyhow::Result<()> {
    match &args.command {
        UsersCommand::Create(a) => {
            let password = match &a.password_env {
                Some(var) => Some(std::env::var(var).with_context(|| {
                    format!("--password-env {var}: the environment variable {var} is not set")
                })?),
                None => None,
            };
            with_auth(global, async |auth, _| {
                let (user, key) = auth
                    .create_user(
                        None,
                        &a.email,
                        password.as_deref(),
                        a.role,
                        a.plan,
                        Some("default"),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot create the user: {e}"))?;
                println!(
                    "created user {} <{}>: role {}, plan {}",
                    user.id, user.email, user.role, user.plan.name
                );
                println!("its API key, shown once (store it now):");
                println!("{}", key.unwrap_or_default());
                Ok(())
            })
            .await
        }
        UsersCommand::List => {
            with_auth(global, async |_, store| {
                let mut after = None;
                println!(
                    "{:<36}  {:<32}  {:<8}  {:<8}  {:<8}  created",
                    "id", "email", "role", "plan", "status"
                );
                loop {
                    let page = store.accounts(after, 500).await?;
                    for u in &page {
                        println!(
                            "{:<36}  {:<32}  {:<8}  {:<8}  {:<8}  {}",
                            u.id,
                            u.email,
                            u.role,
                            u.plan.name,
                            if u.disabled { "disabled" } else { "active" },
                            u.created_at.format("%Y-%m-%d %H:%M")
                        );
                    }
                    match page.last() {
                        Some(u) if page.len() == 500 => after = Some(u.id),
                        _ => break,
                    }
                }
                Ok(())
            })
            .await
        }
    }
}

/// `kwi keys`.
pub async fn keys(global: &GlobalOpts, args: &KeysArgs) -> anyhow::Result<()> {
    with_auth(global, async |auth, store| match &args.command {
        KeysCommand::Create { email, name } => {
            let email = crate::auth::secret::normalise_email(email)
                .map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let Some(user) = store.account_by_email(&email).await? else {
                bail!("no user with email {email}");
            };
            let k = auth
                .create_key(user.id, name)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the key: {e}"))?;
            println!(
                "created API key {} ({}) for {}",
                k.record.id, k.record.name, user.email
            );
            println!("the key, shown once (store it now):");
            println!("{}", k.key);
            Ok(())
        }
        KeysCommand::List { email } => {
            let email = crate::auth::secret::normalise_email(email)
                .map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let Some(user) = store.account_by_email(&email).await? else {
                bail!("no user with email {email}");
            };
            println!(
                "{:<36}  {:<16}  {:<13}  {:<16}  status",
                "id", "name", "prefix", "last used"
            );
            for k in store.api_keys(user.id).await? {
                let status = match (k.revoked_at, k.expires_at) {
                    (Some(t), _) => format!("revoked {}", t.format("%Y-%m-%d %H:%M")),
                    (None, Some(t)) => format!("expires {}", t.format("%Y-%m-%d %H:%M")),
                    (None, None) => "live".into(),
                };
                println!(
                    "{:<36}  {:<16}  {:<13}  {:<16}  {status}",
                    k.id,
                    k.name,
                    k.prefix,
                    k.last_used_at
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "never".into())
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            auth.revoke_key(None, None, *id)
                .await
                .map_err(|e| anyhow::anyhow!("cannot revoke {id}: {e}"))?;
            println!("revoked API key {id}");
            Ok(())
        }
    })
    .await
}
