# Amazon Cognito for one OAuth-protected MCP server and the mcp-oauth-broker desktop app: the
# Terraform twin of installer/cloudformation/mcp-broker-cognito.yaml (same resources, inputs
# and outputs). `terraform output -json > outputs.json` feeds
# `mcp-broker add URL --from-cloudformation outputs.json`.

locals {
  # The broker's fixed loopback ports: Cognito matches redirect URIs exactly, port included.
  callback_ports = [53682, 53683, 53684]
  callback_urls = flatten([
    for host in ["localhost", "127.0.0.1"] : [
      for port in local.callback_ports : "http://${host}:${port}/callback"
    ]
  ])
  custom_scopes = [for name in ["tools", "admin"] : "${var.mcp_server_url}/${name}"]
  region        = data.aws_region.current.region
  domain        = "${var.domain_prefix}.auth.${local.region}.amazoncognito.com"
  issuer        = "https://${aws_cognito_user_pool.this.endpoint}"
}

data "aws_region" "current" {}

resource "aws_cognito_user_pool" "this" {
  name                     = var.pool_name
  user_pool_tier           = var.user_pool_tier
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"]

  admin_create_user_config {
    allow_admin_create_user_only = !var.allow_self_sign_up
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }

  password_policy {
    minimum_length    = 12
    require_lowercase = true
    require_uppercase = true
    require_numbers   = true
    require_symbols   = false
  }
}

resource "aws_cognito_user_pool_domain" "this" {
  domain                = var.domain_prefix
  user_pool_id          = aws_cognito_user_pool.this.id
  managed_login_version = var.login_pages == "managed" ? 2 : 1
}

resource "aws_cognito_resource_server" "mcp" {
  user_pool_id = aws_cognito_user_pool.this.id
  identifier   = var.mcp_server_url
  name         = "MCP server"

  scope {
    scope_name        = "tools"
    scope_description = "Call the MCP server's tools"
  }

  scope {
    scope_name        = "admin"
    scope_description = "Call the MCP server's administrative tools"
  }
}

resource "aws_cognito_user_pool_client" "broker" {
  name         = "mcp-oauth-broker"
  user_pool_id = aws_cognito_user_pool.this.id

  # A public client: a desktop app cannot keep a secret; PKCE (S256) protects the code.
  generate_secret                      = false
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["code"]
  allowed_oauth_scopes                 = concat(["openid", "email", "profile"], local.custom_scopes)
  supported_identity_providers         = ["COGNITO"]
  callback_urls                        = local.callback_urls
  explicit_auth_flows                  = ["ALLOW_REFRESH_TOKEN_AUTH"]
  enable_token_revocation              = true
  prevent_user_existence_errors        = "ENABLED"

  access_token_validity  = var.access_token_validity_minutes
  id_token_validity      = var.access_token_validity_minutes
  refresh_token_validity = var.refresh_token_validity_days

  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "days"
  }

  dynamic "refresh_token_rotation" {
    for_each = var.refresh_token_rotation ? [1] : []
    content {
      feature                    = "ENABLED"
      retry_grace_period_seconds = var.refresh_token_rotation_grace_period_seconds
    }
  }

  # The custom scopes exist only once the resource server does.
  depends_on = [aws_cognito_resource_server.mcp]
}

# Managed login (version 2) shows an error page for a client without a branding style.
resource "aws_cognito_managed_login_branding" "broker" {
  count                       = var.login_pages == "managed" ? 1 : 0
  user_pool_id                = aws_cognito_user_pool.this.id
  client_id                   = aws_cognito_user_pool_client.broker.id
  use_cognito_provided_values = true

  depends_on = [aws_cognito_user_pool_domain.this]
}
