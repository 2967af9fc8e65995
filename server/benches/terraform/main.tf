# A replica of the seed Terraform module the portal replaces: a map of ECR
# repositories under crytera/, each with a repository policy that lets the
# production account pull (read-only). Here it runs against moto, in a staging
# account reached by assuming the same role the portal's worker assumes.

provider "aws" {
  region                      = var.region
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  skip_region_validation      = true

  assume_role {
    role_arn     = "arn:aws:iam::${var.staging_account}:role/ecr-portal-apply"
    session_name = "ecr-portal-terraform-bench"
  }

  endpoints {
    ecr = var.endpoint
    sts = var.endpoint
    iam = var.endpoint
  }
}

locals {
  # The seed module's map of repositories (the keys are stable addresses).
  repositories = {
    repo01 = "crytera/${var.prefix}istio"
    repo02 = "crytera/${var.prefix}nginxistio"
    repo03 = "crytera/${var.prefix}fargate"
  }
}

resource "aws_ecr_repository" "this" {
  for_each = local.repositories

  name                 = each.value
  image_tag_mutability = "MUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }
}

# Production's read-only pull access: the same statement the portal owns.
resource "aws_ecr_repository_policy" "production_pull" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EcrPortalProductionPull"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::${var.production_account}:root" }
      Action = [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
      ]
    }]
  })
}

output "repositories" {
  description = "The repositories' names."
  value       = sort([for r in aws_ecr_repository.this : r.name])
}

output "repository_count" {
  description = "How many repositories the module manages."
  value       = length(aws_ecr_repository.this)
}
