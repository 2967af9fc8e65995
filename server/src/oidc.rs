//! The OpenID Connect adapter: authorization code flow with PKCE (S256),
//! `state` and `nonce`, through the `openidconnect` crate.
//!
//! - Discovery from the configured issuer, cached for ten minutes (so key
//!   rotation is picked up) and retried on the next sign-in if it failed.
//! - The id_token is verified by `openidconnect`: signature against the
//!   provider's JWKS, `iss`, `aud` (our client id), `exp`, and the nonce we
//!   stored for this browser; `at_hash` is checked when present.
//! - Only after that is the (now trusted) payload read for the display name
//!   and the configured groups claim.
//! - The HTTP client follows no redirects (SSRF) and times out.
use crate::config::OidcSection;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use std::time::{Duration, Instant};

/// Who signed in, as the provider vouched for them.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `oidc:<sub>@<issuer host and path>`: issuer and subject, stable.
    pub id: String,
    pub name: String,
    pub groups: Vec<String>,
    /// The `email` claim, when the provider sends one that is an address (notifications go there).
    pub email: Option<String>,
}

/// A sign-in just started: where to send the browser, and what to remember.
pub struct Started {
    pub authorize_url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    groups_claim: String,
    /// `oidc.id_token_algorithms`: the signature algorithms an id_token may use.
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

const METADATA_TTL: Duration = Duration::from_secs(600);

/// `oidc.id_token_algorithms` as the crate's algorithms (JOSE names: RS256, ES256, EdDSA, …).
pub fn parse_algorithms(names: &[String]) -> anyhow::Result<Vec<CoreJwsSigningAlgorithm>> {
    if names.is_empty() {
        anyhow::bail!("config key `oidc.id_token_algorithms` must name at least one algorithm (e.g. RS256)");
    }
    names
        .iter()
        .map(|n| {
            serde_json::from_value(serde_json::Value::String(n.trim().to_string())).map_err(|_| {
                anyhow::anyhow!(
                    "config key `oidc.id_token_algorithms`: `{n}` is not a JWS algorithm (RS256, RS384, RS512, ES256, \
                     ES384, PS256, PS384, PS512, EdDSA, or HS256/HS384/HS512 for a shared secret)"
                )
            })
        })
        .collect()
}

impl Oidc {
    pub fn new(cfg: &OidcSection, redirect_url: String) -> anyhow::Result<Self> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            // Exactly as configured: discovery compares it with the provider's `issuer` byte for byte.
            issuer: IssuerUrl::new(cfg.issuer_url.trim().to_string())
                .map_err(|e| anyhow::anyhow!("config key `oidc.issuer_url`: {e}"))?,
            client_id: ClientId::new(cfg.client_id.trim().to_string()),
            client_secret: Some(cfg.client_secret.clone()).filter(|s| !s.is_empty()).map(ClientSecret::new),
            redirect: RedirectUrl::new(redirect_url)
                .map_err(|e| anyhow::anyhow!("config key `oidc.redirect_url`: {e}"))?,
            groups_claim: cfg.groups_claim.clone(),
            algorithms: parse_algorithms(&cfg.id_token_algorithms)?,
            http,
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    async fn metadata(&self) -> Result<CoreProviderMetadata, String> {
        let mut cached = self.metadata.lock().await;
        if let Some((m, at)) = cached.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let m = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http).await.map_err(|e| {
            tracing::warn!("OpenID Connect discovery at {}: {e}", self.issuer.as_str());
            "the identity provider cannot be reached right now; try again in a minute".to_string()
        })?;
        *cached = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// Builds the authorization URL with a fresh state, nonce and PKCE challenge.
    pub async fn start(&self) -> Result<Started, String> {
        let client = CoreClient::from_provider_metadata(
            self.metadata().await?,
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .set_redirect_uri(self.redirect.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the id_token.
    /// Errors are short reasons for the audit trail; they never contain tokens.
    pub async fn finish(&self, code: &str, nonce: &str, pkce_verifier: &str) -> Result<Identity, String> {
        let client = CoreClient::from_provider_metadata(
            self.metadata().await?,
            self.client_id.clone(),
            self.client_secret.clone(),
        )
        .set_redirect_uri(self.redirect.clone());
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| format!("the provider has no token endpoint: {e}"))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    let why: String = r.error_description().map(|d| d.chars().take(200).collect()).unwrap_or_default();
                    format!("the provider refused the code: {} {why}", r.error()).trim_end().to_string()
                }
                other => format!("exchanging the code failed: {other}"),
            })?;
        let id_token = token.id_token().ok_or("the provider sent no id_token")?;
        let verifier = client.id_token_verifier().set_allowed_algs(self.algorithms.iter().cloned());
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_string()))
            .map_err(|e| format!("the id_token was refused: {:#}", anyhow::Error::from(e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token.signing_alg().map_err(|e| format!("the id_token was refused: {e}"))?;
            let key = id_token.signing_key(&verifier).map_err(|e| format!("the id_token was refused: {e}"))?;
            let actual = AccessTokenHash::from_token(token.access_token(), alg, key)
                .map_err(|e| format!("the id_token was refused: {e}"))?;
            if actual != *expected {
                return Err("the id_token does not match the access token (at_hash)".into());
            }
        }
        // The signature and claims are verified above; the payload can now be read as is.
        let payload = payload(&id_token.to_string()).ok_or("the id_token payload is not JSON")?;
        let sub = claims.subject().as_str().to_string();
        let text = |k: &str| payload.get(k).and_then(|v| v.as_str()).map(str::to_string).filter(|s| !s.is_empty());
        let name = text("preferred_username").or_else(|| text("name")).or_else(|| text("email")).unwrap_or(sub.clone());
        let groups = match payload.get(&self.groups_claim) {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect(),
            Some(serde_json::Value::String(s)) => {
                s.split([',', ' ']).filter(|g| !g.is_empty()).map(str::to_string).collect()
            }
            _ => vec![],
        };
        let issuer = self.issuer.as_str();
        let issuer = issuer.split_once("://").map(|(_, rest)| rest).unwrap_or(issuer).trim_end_matches('/');
        let email = text("email").filter(|e| e.len() <= 254 && e.parse::<lettre::Address>().is_ok());
        Ok(Identity { id: format!("oidc:{sub}@{issuer}"), name: clip(&name, 64), groups, email })
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(n).collect()
}

fn payload(jwt: &str) -> Option<serde_json::Value> {
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod algorithm_tests {
    use super::*;

    #[test]
    fn id_token_algorithms_are_asymmetric_unless_configured() {
        let defaults = parse_algorithms(&OidcSection::default().id_token_algorithms).expect("defaults parse");
        assert!(defaults.contains(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256));
        assert!(defaults.contains(&CoreJwsSigningAlgorithm::EcdsaP256Sha256));
        assert!(!defaults.contains(&CoreJwsSigningAlgorithm::HmacSha256), "no shared-secret algorithm by default");
        assert!(!defaults.contains(&CoreJwsSigningAlgorithm::None));
        let hs = parse_algorithms(&["HS256".to_string()]).expect("configured");
        assert_eq!(hs, [CoreJwsSigningAlgorithm::HmacSha256]);
        let err = parse_algorithms(&["RS257".to_string()]).expect_err("unknown").to_string();
        assert!(err.contains("oidc.id_token_algorithms") && err.contains("RS257"), "{err}");
        assert!(parse_algorithms(&[]).is_err());
    }
}
