# The same outputs as the CloudFormation template (snake_case here, CamelCase there).

output "issuer" {
  description = "Token issuer (iss); its OIDC discovery is <issuer>/.well-known/openid-configuration"
  value       = local.issuer
}

output "user_pool_id" {
  value = aws_cognito_user_pool.this.id
}

output "user_pool_arn" {
  value = aws_cognito_user_pool.this.arn
}

output "region" {
  value = local.region
}

output "client_id" {
  description = "The broker's public app client (no secret)"
  value       = aws_cognito_user_pool_client.broker.id
}

output "domain" {
  description = "The managed-login domain"
  value       = local.domain
}

output "authorization_endpoint" {
  value = "https://${local.domain}/oauth2/authorize"
}

output "token_endpoint" {
  value = "https://${local.domain}/oauth2/token"
}

output "revocation_endpoint" {
  value = "https://${local.domain}/oauth2/revoke"
}

output "jwks_uri" {
  value = "${local.issuer}/.well-known/jwks.json"
}

output "resource_server_identifier" {
  description = "The MCP server URL, also the prefix of the custom scopes"
  value       = aws_cognito_resource_server.mcp.identifier
}

output "scopes" {
  description = "The custom scopes the MCP server checks, space-separated"
  value       = join(" ", local.custom_scopes)
}

output "callback_ports" {
  description = "The loopback ports registered for the broker, comma-separated"
  value       = join(",", [for port in local.callback_ports : tostring(port)])
}
