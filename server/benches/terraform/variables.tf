variable "endpoint" {
  description = "The local AWS stand-in (moto) every AWS call goes to, e.g. http://127.0.0.1:5055."
  type        = string
  default     = "http://127.0.0.1:5055"

  validation {
    condition     = can(regex("^https?://", var.endpoint))
    error_message = "The endpoint must be an http:// or https:// URL."
  }
}

variable "staging_account" {
  description = "The staging account the repositories land in: the provider assumes arn:aws:iam::<staging_account>:role/ecr-portal-apply, as the portal does."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.staging_account))
    error_message = "The staging account must be 12 digits."
  }
}

variable "production_account" {
  description = "The production account granted read-only pull access on every repository."
  type        = string
  default     = "222222222222"

  validation {
    condition     = can(regex("^[0-9]{12}$", var.production_account))
    error_message = "The production account must be 12 digits."
  }
}

variable "prefix" {
  description = "The start of each repository's name (crytera/<prefix>istio, ...), so repeated runs in one account do not collide. The seed module's own names use \"template\"."
  type        = string
  default     = "template"

  validation {
    condition     = can(regex("^[a-z0-9]+([._-][a-z0-9]+)*$", var.prefix))
    error_message = "The prefix must be lowercase letters and digits, optionally separated by single '.', '_' or '-'."
  }
}

variable "region" {
  description = "The AWS region."
  type        = string
  default     = "us-east-1"
}
