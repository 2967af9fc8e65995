//! AWS account ids and IAM role ARNs, parsed once at the edge (configuration).
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("`{0}` is not an AWS account id (12 digits)")]
    AccountId(String),
    #[error("`{0}` is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")]
    RoleArn(String),
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let raw = raw.trim();
        if raw.len() == 12 && raw.chars().all(|c| c.is_ascii_digit()) {
            Ok(Self(raw.to_string()))
        } else {
            Err(AccountError::AccountId(raw.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The principal that stands for the whole account in a resource policy.
    pub fn root_principal(&self) -> String {
        format!("arn:aws:iam::{}:root", self.0)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `arn:<partition>:iam::<account>:role/<path/name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RoleArn {
    arn: String,
    account: AccountId,
}

impl RoleArn {
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let bad = || AccountError::RoleArn(raw.to_string());
        let parts: Vec<&str> = raw.trim().splitn(6, ':').collect();
        if parts.len() != 6
            || parts[0] != "arn"
            || !parts[1].starts_with("aws")
            || parts[2] != "iam"
            || !parts[3].is_empty()
        {
            return Err(bad());
        }
        let account = AccountId::parse(parts[4]).map_err(|_| bad())?;
        match parts[5].strip_prefix("role/") {
            Some(name) if !name.is_empty() => Ok(Self { arn: raw.trim().to_string(), account }),
            _ => Err(bad()),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.arn
    }
    pub fn account(&self) -> &AccountId {
        &self.account
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(AccountId::parse("123456789012").is_ok());
        assert!(AccountId::parse("12345678901").is_err());
        assert!(AccountId::parse("12345678901a").is_err());
        assert_eq!(AccountId::parse("222222222222").expect("ok").root_principal(), "arn:aws:iam::222222222222:root");
    }

    #[test]
    fn role_arns_carry_their_account() {
        let r = RoleArn::parse("arn:aws:iam::111111111111:role/ecr-portal").expect("ok");
        assert_eq!(r.account().as_str(), "111111111111");
        for bad in [
            "arn:aws:iam::111111111111:user/x",
            "arn:aws:iam::1:role/x",
            "arn:aws:s3:::b",
            "role/x",
            "arn:aws:iam::111111111111:role/",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
    }
}
