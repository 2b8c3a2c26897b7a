# The same inputs as installer/cloudformation/mcp-broker-cognito.yaml's Parameters
# (snake_case here, CamelCase there; tests/installer/test_terraform.py keeps them in step).

variable "mcp_server_url" {
  description = "The MCP server's canonical URL (the RFC 8707 resource), e.g. https://mcp.example.com/mcp; it becomes the resource server identifier and the prefix of the custom scopes."
  type        = string

  validation {
    condition     = can(regex("^https?://[a-z0-9.-]+(:[0-9]+)?(/[^\\s?#]*[^/\\s?#])?$", var.mcp_server_url))
    error_message = "An http(s) URL with a lowercase host and no query, fragment or trailing slash."
  }
}

variable "domain_prefix" {
  description = "Prefix of the managed-login domain <prefix>.auth.<region>.amazoncognito.com (unique in the region; no \"aws\", \"amazon\" or \"cognito\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", var.domain_prefix))
    error_message = "Lowercase letters, digits and hyphens, 1-63 characters."
  }
}

variable "pool_name" {
  description = "Name of the user pool."
  type        = string
  default     = "mcp-oauth-broker"
}

variable "login_pages" {
  description = "\"managed\" for managed login (version 2, Cognito's default branding), \"classic\" for the classic hosted UI."
  type        = string
  default     = "managed"

  validation {
    condition     = contains(["managed", "classic"], var.login_pages)
    error_message = "Either \"managed\" or \"classic\"."
  }
}

variable "user_pool_tier" {
  description = "ESSENTIALS or PLUS bind access tokens to the MCP server (aud = resource); LITE does not."
  type        = string
  default     = "ESSENTIALS"

  validation {
    condition     = contains(["LITE", "ESSENTIALS", "PLUS"], var.user_pool_tier)
    error_message = "One of LITE, ESSENTIALS, PLUS."
  }
}

variable "allow_self_sign_up" {
  description = "Let people create their own accounts on the sign-in page (else administrators only)."
  type        = bool
  default     = false
}

variable "access_token_validity_minutes" {
  description = "Lifetime of access and ID tokens."
  type        = number
  default     = 60

  validation {
    condition     = var.access_token_validity_minutes >= 5 && var.access_token_validity_minutes <= 1440
    error_message = "Between 5 and 1440 minutes."
  }
}

variable "refresh_token_validity_days" {
  description = "Lifetime of refresh tokens."
  type        = number
  default     = 30

  validation {
    condition     = var.refresh_token_validity_days >= 1 && var.refresh_token_validity_days <= 3650
    error_message = "Between 1 and 3650 days."
  }
}

variable "refresh_token_rotation" {
  description = "Issue a new refresh token on every refresh (the old one stays valid for the grace period)."
  type        = bool
  default     = false
}

# Why a grace period: with rotation, a broker killed after Cognito answered a refresh and before
# the new refresh token reached the keyring holds only the old one. With 0 s that sign-in is lost
# (tests/e2e/test_real_life_kill_refresh.py); with 10 s every such kill recovered. Keep it above 0.
variable "refresh_token_rotation_grace_period_seconds" {
  description = "How long a rotated-out refresh token stays valid, 0-60 seconds; above 0 so that a broker killed mid-refresh keeps its sign-in."
  type        = number
  default     = 10

  validation {
    condition     = var.refresh_token_rotation_grace_period_seconds >= 0 && var.refresh_token_rotation_grace_period_seconds <= 60
    error_message = "Between 0 and 60 seconds."
  }
}
