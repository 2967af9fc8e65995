//! People and their rights: sessions, API tokens, security events (sign-ins,
//! denials, token use) and the capability checks every use case starts with.
use super::{Error, PortalService, ANONYMOUS_EVENTS_PER_MINUTE, ANONYMOUS_EVENTS_PER_SOURCE};
use crate::clock::format_ms;
use crate::db::{self, NewEvent};
use app::domain::audit::AuditAction;
use app::domain::form::FieldError;
use app::domain::principal::{Capability, Principal, TokenScope};
use app::domain::time::Timestamp;
use app::views::*;

impl PortalService {
    /// The session with this id hash, if it exists (expired or not).
    pub async fn session(&self, id_hash: &str) -> Result<Option<db::SessionRow>, Error> {
        Ok(db::get_session(&self.db.pool, id_hash).await?)
    }

    /// Keeps an OpenID Connect sign-in in progress, bound to the browser that started it.
    pub async fn save_oidc_login(&self, binding_hash: &str, login: &db::OidcLogin) -> Result<(), Error> {
        let mut tx = self.db.write().await?;
        db::insert_oidc_login(&mut tx, binding_hash, login).await?;
        Ok(tx.commit().await?)
    }

    /// Takes the sign-in in progress bound to this browser (each is used at most once).
    pub async fn take_oidc_login(&self, binding_hash: &str) -> Result<Option<db::OidcLogin>, Error> {
        let mut tx = self.db.write().await?;
        let login = db::take_oidc_login(&mut tx, binding_hash).await?;
        tx.commit().await?;
        Ok(login)
    }

    /// Creates a session and records the sign-in, in one transaction.
    pub async fn start_session(
        &self,
        p: &Principal,
        email: Option<&str>,
        id_hash: &str,
        now: i64,
        expires: i64,
        detail: String,
    ) -> Result<(), Error> {
        let mut tx = self.db.write().await?;
        db::upsert_user(&mut tx, p, email, now).await?;
        db::insert_session(&mut tx, id_hash, &p.id, now, expires).await?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &p.id,
                action: AuditAction::SignedIn,
                request_id: None,
                repository: None,
                detail,
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await.map_err(Error::from)
    }

    /// Ends a session on the server and records the sign-out, in one transaction.
    pub async fn end_session(&self, p: Option<&Principal>, id_hash: Option<&str>) -> Result<(), Error> {
        let mut tx = self.db.write().await?;
        if let Some(h) = id_hash {
            db::delete_session(&mut tx, h).await?;
        }
        if let Some(p) = p {
            db::insert_event(
                &mut tx,
                &NewEvent {
                    at: self.now(),
                    actor: &p.id,
                    action: AuditAction::SignedOut,
                    request_id: None,
                    repository: None,
                    detail: String::new(),
                    aws_request_ids: vec![],
                },
            )
            .await?;
        }
        tx.commit().await.map_err(Error::from)
    }

    /// Notes that a session is in use (at most once a minute). Best effort.
    pub async fn touch_session(&self, id_hash: &str, now: i64) {
        let touch = async {
            let mut tx = self.db.write().await?;
            db::touch_session(&mut tx, id_hash, now).await?;
            tx.commit().await
        };
        if let Err(e) = touch.await {
            tracing::warn!("touching a session: {e}");
        }
    }

    /// Records a security event that belongs to no request (sign-in failures,
    /// denials, token use). Best effort: a failure to record is logged, and
    /// never turns a denial into something else.
    pub async fn security_event(&self, actor: &str, action: AuditAction, detail: String) {
        let event = NewEvent {
            at: self.now(),
            actor,
            action,
            request_id: None,
            repository: None,
            detail,
            aws_request_ids: vec![],
        };
        let write = async {
            let mut tx = self.db.write().await?;
            db::insert_event(&mut tx, &event).await?;
            tx.commit().await
        };
        if let Err(e) = write.await {
            tracing::error!("recording {}: {e}", action.as_str());
        }
    }

    /// A security event that anyone can cause without signing in (a bogus
    /// token, a forged callback, a cross-site post), from `source` (the
    /// client's address). Recorded like the others, but at most
    /// [`ANONYMOUS_EVENTS_PER_SOURCE`] a minute per source and
    /// [`ANONYMOUS_EVENTS_PER_MINUTE`] in all, so a flood from one address
    /// cannot push out the events of everyone else, and no flood can fill the
    /// trail or hold its write lock; the rest are counted in the log and
    /// summed up in that source's next recorded event.
    pub async fn anonymous_event(
        &self,
        source: Option<std::net::IpAddr>,
        actor: Option<&str>,
        action: AuditAction,
        detail: String,
    ) {
        use crate::limiter::Hit;
        let now = self.now();
        let from = source.map(|ip| ip.to_string()).unwrap_or_else(|| "an unknown address".into());
        let dropped = match self.anonymous_per_source.hit(&source, now) {
            Hit::Allowed { dropped } => dropped,
            Hit::Over { .. } => {
                tracing::warn!(
                    "{}: {detail} from {from} (not recorded: over {ANONYMOUS_EVENTS_PER_SOURCE}/min from it)",
                    action.as_str()
                );
                return;
            }
        };
        if let Hit::Over { .. } = self.anonymous_in_all.hit(&(), now) {
            tracing::warn!(
                "{}: {detail} from {from} (not recorded: over {ANONYMOUS_EVENTS_PER_MINUTE}/min in all)",
                action.as_str()
            );
            return;
        }
        let detail = match dropped {
            0 => format!("{detail} [from {from}]"),
            n => format!("{detail} [from {from}] (and {n} more from it not recorded, over the limit)"),
        };
        self.security_event(actor.unwrap_or("anonymous"), action, detail).await;
    }

    /// Whether sessions and tokens of this user id still count: those made
    /// with the local sign-in stop working when the portal runs with OIDC.
    pub fn accepts_credentials_of(&self, user_id: &str) -> bool {
        self.deployment.local_sign_in || !user_id.starts_with("local:")
    }

    /// Everyone who has signed in, newest first (at most 1,000), with their live sessions and tokens.
    pub async fn list_users(&self, by: &Principal) -> Result<Vec<UserView>, Error> {
        self.authorize(by, Capability::ReadPeople, "see who has signed in").await?;
        let rows = db::list_users(&self.db.pool, self.now(), 1_000).await?;
        Ok(rows
            .into_iter()
            .map(|u| UserView {
                id: u.principal.id,
                name: u.principal.name,
                role: u.principal.role,
                groups: u.principal.groups,
                last_sign_in: Timestamp::from_unix_ms(u.last_sign_in),
                last_seen: Timestamp::from_unix_ms(u.last_seen),
                sessions: u.sessions,
                tokens: u.tokens,
            })
            .collect())
    }

    /// Cuts a person off: ends all their sessions and revokes all their API
    /// tokens at once (their next request gets 401), with its audit event, in
    /// one transaction. They can sign in again only if the identity provider
    /// still lets them.
    pub async fn revoke_user(&self, by: &Principal, user: String) -> Result<UserRevoked, Error> {
        self.authorize(by, Capability::ManagePeople, "cut people off").await?;
        let user = user.trim().to_string();
        if user.is_empty() || user.chars().count() > 512 {
            return Err(Error::field("user", "give the user id, e.g. oidc:<subject>@<issuer> or local:alice"));
        }
        let now = self.now();
        let mut tx = self.db.write().await?;
        let Some((sessions, tokens)) = db::revoke_user(&mut tx, &user, now).await? else {
            tx.rollback().await?;
            return Err(Error::NotFound(format!("nobody with the id {user} has signed in")));
        };
        let detail = format!("{user}: ended {sessions} session(s) and revoked {tokens} API token(s)");
        let detail = match by.via() {
            Some(via) => format!("{detail} (through {via})"),
            None => detail,
        };
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: AuditAction::UserRevoked,
                request_id: None,
                repository: None,
                detail,
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await?;
        let n = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
        Ok(UserRevoked { user, sessions_ended: n(sessions), tokens_revoked: n(tokens) })
    }

    /// Checks that `by` may decide some kind of request: the `Decide`
    /// capability and a group the approval policy names. Which requests is
    /// the state machine's check, against the request's own rule.
    pub async fn authorize_decide(&self, by: &Principal, what: &str) -> Result<(), Error> {
        self.authorize(by, Capability::Decide, what).await?;
        if self.approves_anything(by) {
            return Ok(());
        }
        Err(self.deny(by, format!("only members of an approval group can {what}")).await)
    }

    /// Whether `by` is in any group the approval policy names.
    pub(super) fn approves_anything(&self, by: &Principal) -> bool {
        let a = &self.deployment.approval;
        [&a.create_repository, &a.grant_production, &a.revoke_production, &a.restore_repository]
            .iter()
            .any(|rule| rule.may_decide(by))
    }

    /// A refusal, recorded in the audit trail with who tried what.
    pub async fn deny(&self, by: &Principal, message: String) -> Error {
        let via = by.via().map(|v| format!(" (through {v})")).unwrap_or_default();
        self.security_event(&by.id, AuditAction::AccessDenied, format!("{message}{via}")).await;
        Error::Forbidden(message)
    }

    /// Checks one capability; a refusal is recorded. `what` completes "you cannot …".
    pub async fn authorize(&self, by: &Principal, c: Capability, what: &str) -> Result<(), Error> {
        if by.can(c) {
            return Ok(());
        }
        let message = match (&by.token, by.role) {
            (Some(t), _) if t.scope == TokenScope::Submit => {
                format!("this API token can only submit requests and read them; it cannot {what}")
            }
            (Some(_), _) if c == Capability::ManageTokens => "API tokens cannot manage API tokens; sign in".into(),
            (_, app::domain::principal::Role::Auditor) => format!("auditors read everything but cannot {what}"),
            _ => format!("only admins can {what}"),
        };
        Err(self.deny(by, message).await)
    }

    /// Turns a refused decision into an error, recording refusals that are about rights.
    pub(super) async fn refused(&self, by: &Principal, e: app::domain::request::TransitionError) -> Error {
        let e = Error::from(e);
        match e {
            Error::Forbidden(m) => self.deny(by, m).await,
            other => other,
        }
    }

    /// The principal an API token acts for, or why it cannot be used (never echoing the secret).
    pub async fn authenticate_token(&self, secret: &str) -> Result<Principal, String> {
        let found = db::token_by_hash(&self.db.pool, &crate::secret::hash(secret)).await.map_err(|e| {
            tracing::error!("reading API tokens: {e}");
            "API tokens cannot be checked right now".to_string()
        })?;
        let Some((t, mut p, signed_in)) = found else { return Err("unknown API token".into()) };
        let now = self.now();
        if t.revoked_at.is_some() {
            return Err(format!("API token #{} was revoked", t.id));
        }
        if t.expires_at <= now {
            return Err(format!("API token #{} expired on {}", t.id, format_ms(t.expires_at)));
        }
        if !self.accepts_credentials_of(&p.id) {
            return Err(format!(
                "API token #{} was made with the local sign-in, which this portal no longer uses",
                t.id
            ));
        }
        if now.saturating_sub(signed_in) > self.deployment.token_role_max_age_ms {
            let days = self.deployment.token_role_max_age_ms / 86_400_000;
            return Err(format!(
                "API token #{}: its owner has not signed in for more than {days} days (last {}); it works again once \
                 they sign in",
                t.id,
                format_ms(signed_in)
            ));
        }
        if t.last_used_at.is_none_or(|at| now - at > 60_000) {
            let id = t.id;
            let touch = async {
                let mut tx = self.db.write().await?;
                db::touch_token(&mut tx, id, now).await?;
                tx.commit().await
            };
            if let Err(e) = touch.await {
                tracing::warn!("touching an API token: {e}");
            }
        }
        p.token = Some(app::domain::principal::TokenUse { id: t.id, name: t.name, scope: t.scope });
        Ok(p)
    }

    fn token_view(&self, t: db::TokenRow) -> TokenView {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at <= self.now() {
            "expired"
        } else {
            "active"
        };
        TokenView {
            id: t.id,
            name: t.name,
            scope: t.scope,
            created_at: Timestamp::from_unix_ms(t.created_at),
            expires_at: Timestamp::from_unix_ms(t.expires_at),
            last_used_at: t.last_used_at.map(Timestamp::from_unix_ms),
            state: state.into(),
        }
    }

    pub async fn list_tokens(&self, by: &Principal) -> Result<Vec<TokenView>, Error> {
        self.authorize(by, Capability::ManageTokens, "manage API tokens").await?;
        let rows = db::tokens_of(&self.db.pool, &by.id).await?;
        Ok(rows.into_iter().map(|t| self.token_view(t)).collect())
    }

    pub async fn create_token(
        &self,
        by: &Principal,
        name: String,
        scope: String,
        days: u32,
    ) -> Result<CreatedToken, Error> {
        self.authorize(by, Capability::ManageTokens, "manage API tokens").await?;
        let mut errors = vec![];
        let name = match app::domain::text::free_text(&name, 64, false) {
            Ok(n) if !n.is_empty() => n,
            Ok(_) => {
                errors.push(FieldError::new("name", "name the token in 1 to 64 characters, e.g. ci-deploy"));
                String::new()
            }
            Err(e) => {
                errors.push(FieldError::new("name", format!("the name: {e}")));
                String::new()
            }
        };
        let scope = TokenScope::parse(&scope);
        if scope.is_none() {
            errors.push(FieldError::new("scope", "choose `submit` (submit requests only) or `user` (act as you)"));
        }
        let max = self.deployment.token_max_days;
        if days == 0 || days > max {
            errors.push(FieldError::new("days", format!("a token lives 1 to {max} days")));
        }
        let Some(scope) = scope.filter(|_| errors.is_empty()) else { return Err(Error::Invalid(errors)) };
        let secret = crate::secret::new_token_secret();
        let now = self.now();
        let expires = now + i64::from(days) * 86_400_000;
        let mut tx = self.db.write().await?;
        let id = db::insert_token(&mut tx, &crate::secret::hash(&secret), &by.id, &name, scope, now, expires).await?;
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: AuditAction::TokenCreated,
                request_id: None,
                repository: None,
                detail: format!("API token #{id} ({name}): {}, until {}", scope.label(), format_ms(expires)),
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await?;
        let token = db::TokenRow {
            id,
            name,
            scope,
            created_at: now,
            expires_at: expires,
            revoked_at: None,
            last_used_at: None,
        };
        Ok(CreatedToken { token: self.token_view(token), secret })
    }

    pub async fn revoke_token(&self, by: &Principal, id: i64) -> Result<Vec<TokenView>, Error> {
        self.authorize(by, Capability::ManageTokens, "manage API tokens").await?;
        let now = self.now();
        let mut tx = self.db.write().await?;
        if !db::revoke_token(&mut tx, &by.id, id, now).await? {
            return Err(Error::NotFound(format!("you have no active API token #{id}")));
        }
        db::insert_event(
            &mut tx,
            &NewEvent {
                at: now,
                actor: &by.id,
                action: AuditAction::TokenRevoked,
                request_id: None,
                repository: None,
                detail: format!("API token #{id}"),
                aws_request_ids: vec![],
            },
        )
        .await?;
        tx.commit().await?;
        self.list_tokens(by).await
    }
}
