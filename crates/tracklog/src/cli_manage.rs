//! The management subcommands: access policies, SAS tokens, web UI users
//! and organisations, each change audited as the API audits it.

use std::io::{IsTerminal, Read};

use anyhow::{anyhow, bail};
use serde_json::json;
use tracklog_domain::auth::{Rights, make_sas_token};
use tracklog_domain::ids::{OrgName, PolicyName, PortalId, UserName};
use tracklog_domain::time::{UtcMillis, parse_duration};
use tracklog_domain::user::Role;
use tracklog_server::services::{Actor, policies, selfaudit, users};
use tracklog_store::{Policy, Stores};

use crate::cli::{Command, KeyChoice, OrgCommand, PolicyCommand, UserCommand, org_id};

fn policy_name(text: &str) -> anyhow::Result<PolicyName> {
    PolicyName::parse(text).map_err(|e| anyhow!("policy name {e}"))
}

/// The named policy, in whichever org holds it.
async fn existing_policy(stores: &Stores, name: &str) -> anyhow::Result<Policy> {
    let name = policy_name(name)?;
    stores
        .meta
        .policy(&name)
        .await?
        .ok_or_else(|| anyhow!("there is no policy named {name}"))
}

fn print_policy_keys(policy: &Policy, as_json: bool) {
    let rights: Vec<&str> = policy.rights.to_vec().iter().map(|r| r.as_str()).collect();
    if as_json {
        println!(
            "{}",
            json!({
                "name": policy.name.as_str(),
                "rights": rights,
                "portal": policy.portal.as_ref().map(PortalId::as_str),
                "provider": policy.provider,
                "primary_key": policy.primary_key.expose(),
                "secondary_key": policy.secondary_key.expose(),
            })
        );
    } else {
        println!("policy:        {}", policy.name);
        println!("rights:        {}", rights.join(","));
        if let Some(portal) = &policy.portal {
            println!("portal:        {portal}");
        }
        println!("primary key:   {}", policy.primary_key.expose());
        println!("secondary key: {}", policy.secondary_key.expose());
        println!("Keep these keys secret; `tracklog policy rotate` replaces one.");
    }
}

/// Reads a password from piped standard input, or generates one.
fn user_name(name: String) -> anyhow::Result<UserName> {
    UserName::parse(name).map_err(|e| anyhow!("user name {e}"))
}

fn password_from_stdin() -> anyhow::Result<(String, bool)> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut text = String::new();
        stdin.lock().take(4096).read_to_string(&mut text)?;
        let line = text.lines().next().unwrap_or("").to_owned();
        if !line.is_empty() {
            return Ok((line, false));
        }
    }
    Ok((tracklog_server::ui::session::random_token(), true))
}

pub(crate) async fn manage(stores: &Stores, command: Command) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        Command::Serve { .. }
        | Command::Bench(_)
        | Command::Doctor { .. }
        | Command::Audit(_)
        | Command::Import(_)
        | Command::Analytics(_)
        | Command::Contact(_) => {
            unreachable!("handled by execute")
        }
        Command::Policy(PolicyCommand::Create {
            name,
            rights,
            portal,
            provider,
            org,
            json,
        }) => {
            let org = org_id(stores, &org).await?;
            let new = policies::NewPolicy {
                name: policy_name(&name)?,
                rights: Rights::parse_list(&rights).map_err(|e| anyhow!("--rights: {e}"))?,
                portal: portal
                    .map(PortalId::parse)
                    .transpose()
                    .map_err(|e| anyhow!("--portal: {e}"))?,
                provider,
            };
            let policy = policies::create(stores, org, &actor, new).await?;
            print_policy_keys(&policy, json);
        }
        Command::Policy(PolicyCommand::List { org, json }) => {
            let org = org_id(stores, &org).await?;
            let list = stores.meta.list_policies(org).await?;
            if json {
                let items: Vec<_> = list
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name.as_str(),
                            "rights": p.rights.to_vec().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                            "portal": p.portal.as_ref().map(PortalId::as_str),
                            "provider": p.provider,
                            "created_at": p.created_at.to_rfc3339(),
                        })
                    })
                    .collect();
                println!("{}", json!({ "items": items }));
            } else if list.is_empty() {
                println!(
                    "no policies; create one with `tracklog policy create NAME --rights manage,write,read`"
                );
            } else {
                println!("{:<24} {:<20} {:<16} created", "name", "rights", "portal");
                for p in list {
                    let rights: Vec<&str> = p.rights.to_vec().iter().map(|r| r.as_str()).collect();
                    println!(
                        "{:<24} {:<20} {:<16} {}",
                        p.name,
                        rights.join(","),
                        p.portal.as_ref().map_or("-", PortalId::as_str),
                        p.created_at
                    );
                }
            }
        }
        Command::Policy(PolicyCommand::Rotate { name, key, json }) => {
            let existing = existing_policy(stores, &name).await?;
            let policy =
                policies::rotate(stores, existing.org, &actor, &existing.name, key.into()).await?;
            print_policy_keys(&policy, json);
        }
        Command::Policy(PolicyCommand::Delete { name }) => {
            let existing = existing_policy(stores, &name).await?;
            policies::delete(stores, existing.org, &actor, &existing.name).await?;
            println!("deleted policy {}", existing.name);
        }
        Command::Sas {
            policy,
            resource,
            ttl,
            key,
        } => {
            let policy = existing_policy(stores, &policy).await?;
            let ttl_ms = parse_duration(&ttl)
                .filter(|ms| *ms > 0)
                .ok_or_else(|| anyhow!("--ttl: {ttl:?} is not a duration such as 1h or PT1H"))?;
            let expiry = (UtcMillis::now().as_millis() + ttl_ms) / 1000;
            let key = match key {
                KeyChoice::Primary => &policy.primary_key,
                KeyChoice::Secondary => &policy.secondary_key,
            };
            println!("{}", make_sas_token(&resource, &policy.name, key, expiry));
        }
        Command::User(UserCommand::Add { name, role, org }) => {
            let org = org_id(stores, &org).await?;
            let role: Role = role.parse().map_err(|e: String| anyhow!("--role: {e}"))?;
            let name = UserName::parse(name).map_err(|e| anyhow!("user name {e}"))?;
            let (password, generated) = password_from_stdin()?;
            let user = users::add(stores, org, &actor, name, role, password.clone()).await?;
            println!("added user {} ({})", user.name, user.role.as_str());
            if generated {
                println!("password: {password}");
                println!("It is shown only now.");
            }
        }
        Command::User(UserCommand::List { org }) => {
            let org = org_id(stores, &org).await?;
            println!(
                "{:<24} {:<11} {:<9} {:<25} CREATED",
                "NAME", "ROLE", "STATUS", "LAST SIGN-IN"
            );
            for user in stores.meta.list_users(org).await? {
                println!(
                    "{:<24} {:<11} {:<9} {:<25} {}",
                    user.name.as_str(),
                    user.role.as_str(),
                    if user.disabled { "disabled" } else { "active" },
                    user.last_sign_in
                        .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339()),
                    user.created_at.to_rfc3339()
                );
            }
        }
        Command::User(UserCommand::Disable { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let update = users::UserUpdate {
                disabled: Some(true),
                ..Default::default()
            };
            users::update(stores, org, &actor, &name, update).await?;
            println!("disabled {name}; their sessions have ended");
        }
        Command::User(UserCommand::Enable { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let update = users::UserUpdate {
                disabled: Some(false),
                ..Default::default()
            };
            users::update(stores, org, &actor, &name, update).await?;
            println!("enabled {name}");
        }
        Command::User(UserCommand::Role { name, role, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let role: Role = role.parse().map_err(|e: String| anyhow!("role: {e}"))?;
            let update = users::UserUpdate {
                role: Some(role),
                ..Default::default()
            };
            let user = users::update(stores, org, &actor, &name, update).await?;
            println!("{name} is now {}", user.role.as_str());
        }
        Command::User(UserCommand::ResetPassword { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            let (password, generated) = password_from_stdin()?;
            let password = (!generated).then_some(password);
            let made = users::reset_password(stores, org, &actor, &name, password).await?;
            println!("reset the password of {name}; their sessions have ended");
            if let Some(password) = made {
                println!("password: {password}");
                println!("It is shown only now.");
            }
        }
        Command::User(UserCommand::Remove { name, org }) => {
            let (org, name) = (org_id(stores, &org).await?, user_name(name)?);
            users::remove(stores, org, &actor, &name).await?;
            println!("removed {name}");
        }
        Command::Org(OrgCommand::Create { name }) => {
            let name = OrgName::parse(name).map_err(|e| anyhow!("org name {e}"))?;
            if stores.meta.org_by_name(&name).await?.is_some() {
                bail!("an org named {name} already exists");
            }
            let org = stores.meta.ensure_org(&name).await?;
            selfaudit::record(
                stores,
                org.id,
                &actor,
                selfaudit::Action {
                    operation: "CreateOrganization",
                    entity_name: "organization",
                    entity_id: org.name.as_str(),
                    success: true,
                    fields: None,
                },
            )
            .await;
            println!("created org {name}");
        }
        Command::Org(OrgCommand::List) => {
            for org in stores.meta.list_orgs().await? {
                println!("{:<24} {}", org.name, org.created_at);
            }
        }
    }
    Ok(())
}
