//! The web forms as posted: text fields in, the inputs of `form.rs` out. The page's script
//! and the server's form handlers (`server/src/http/forms.rs`) read a form the same way.
use super::form::{parse_optional_number, AccessRequestInput, FieldError, RepositoryRequestInput};
use super::name::Namespace;
use serde::{Deserialize, Serialize};

/// The new-repository web form as posted: every field as typed (a ticked box is present,
/// an unticked one absent). The page's script and the server read the same form into a
/// [`RepositoryRequestInput`] with [`RepositoryForm::input`], so both say the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepositoryForm {
    pub name: String,
    pub tag_mutability: String,
    pub encryption: String,
    pub kms_key_arn: String,
    pub scan_on_push: Option<String>,
    pub grant_production: Option<String>,
    pub keep_last_images: String,
    pub expire_untagged_after_days: String,
    pub team: String,
    pub cost_center: String,
    pub justification: String,
}

impl RepositoryForm {
    /// What a fresh form shows: immutable tags, AES-256, scan on push.
    pub fn fresh() -> Self {
        Self {
            tag_mutability: "IMMUTABLE".into(),
            encryption: "AES256".into(),
            scan_on_push: Some("true".into()),
            ..Self::default()
        }
    }

    /// The form as a request, checked as the form is (every field's problem at once).
    pub fn input(&self, namespace: &Namespace) -> Result<RepositoryRequestInput, Vec<FieldError>> {
        let mut errors = Vec::new();
        let keep = parse_optional_number("keep_last_images", &self.keep_last_images)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let days = parse_optional_number("expire_untagged_after_days", &self.expire_untagged_after_days)
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let input = RepositoryRequestInput {
            name: self.name.clone(),
            tag_mutability: Some(self.tag_mutability.clone()),
            scan_on_push: Some(self.scan_on_push.is_some()),
            encryption: Some(self.encryption.clone()),
            kms_key_arn: Some(self.kms_key_arn.clone()),
            keep_last_images: keep,
            expire_untagged_after_days: days,
            // Exclusions, rules of one's own and free tags: through the JSON API (see the docs).
            tag_mutability_exclusions: None,
            lifecycle_rules: None,
            tags: None,
            team: self.team.clone(),
            cost_center: self.cost_center.clone(),
            justification: self.justification.clone(),
            grant_production: Some(self.grant_production.is_some()),
        };
        if let Err(mut more) = input.check_form(namespace) {
            errors.append(&mut more);
        }
        if errors.is_empty() {
            Ok(input)
        } else {
            Err(errors)
        }
    }
}

/// The days a new API token lasts, as typed in the tokens form.
pub fn parse_token_days(raw: &str) -> Result<u32, FieldError> {
    raw.trim().parse::<u32>().map_err(|_| FieldError::new("days", "enter a whole number of days"))
}

impl AccessRequestInput {
    /// The web form as posted: its end date field is there for a revoke too (hidden by the
    /// page's script), so a revoke drops it rather than refusing it.
    pub fn from_form(mut self) -> Self {
        if self.action.trim() == "revoke" {
            self.until = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> Namespace {
        Namespace::parse("crytera").expect("ns")
    }

    #[test]
    fn a_revoke_from_the_web_form_drops_the_end_date_its_hidden_field_still_holds() {
        let form = |action: &str| AccessRequestInput {
            action: action.into(),
            repository: "x".into(),
            until: Some("2099-01-01".into()),
            justification: "j".into(),
        };
        assert_eq!(form("revoke").from_form().until, None);
        assert!(form("revoke").from_form().parse(&ns(), 0).is_ok());
        assert_eq!(form("grant").from_form().until.as_deref(), Some("2099-01-01"));
        assert!(form("revoke").parse(&ns(), 0).is_err(), "the JSON API still refuses it");
    }
}
