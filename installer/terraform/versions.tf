terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: refresh_token_rotation, managed_login_version, aws_cognito_managed_login_branding
      version = ">= 6.0"
    }
  }
}
