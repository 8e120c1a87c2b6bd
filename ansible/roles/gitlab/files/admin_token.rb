# Keeps one administrator personal access token for automation (scope api), idempotently.
# Run with `gitlab-rails runner <this file>`. Inputs come from the environment so that no
# secret appears on a command line:
#   DUO_TOKEN_USER, DUO_TOKEN_NAME, DUO_TOKEN_EXPIRES_IN_DAYS, DUO_TOKEN_MIN_VALID_DAYS,
#   DUO_TOKEN_CURRENT (the token the controller holds; empty when it holds none).
# Output, last line, JSON: {"status":"exists"} when the held token is active, has scope api,
# belongs to the user and stays valid beyond the minimum; otherwise tokens of that name are
# revoked and {"status":"created","token":"..."} is printed (GitLab keeps only a digest, so a
# token the controller lost cannot be read back: it is replaced).
require 'json'

def finish(status, **fields)
  puts({ status: status }.merge(fields).to_json)
  exit(status == 'error' ? 1 : 0)
end

username = ENV.fetch('DUO_TOKEN_USER')
name = ENV.fetch('DUO_TOKEN_NAME')
min_valid_until = Date.today + ENV.fetch('DUO_TOKEN_MIN_VALID_DAYS').to_i
expires_at = Date.today + ENV.fetch('DUO_TOKEN_EXPIRES_IN_DAYS').to_i
current = ENV.fetch('DUO_TOKEN_CURRENT', '').strip

user = User.find_by_username(username)
finish('error', message: "user #{username} not found") unless user
finish('error', message: "user #{username} is not an administrator") unless user.admin?

unless current.empty?
  held = PersonalAccessToken.find_by_token(current)
  if held && held.user_id == user.id && held.active? && held.scopes.map(&:to_s).include?('api') &&
     held.expires_at && held.expires_at > min_valid_until
    finish('exists', expires_at: held.expires_at.iso8601)
  end
end

user.personal_access_tokens.active.where(name: name).find_each(&:revoke!)

attributes = { scopes: [:api], name: name, expires_at: expires_at }
# Newer GitLab versions tie tokens to an organization.
if PersonalAccessToken.column_names.include?('organization_id') && defined?(Organizations::Organization)
  attributes[:organization] = Organizations::Organization.default_organization
end
token = user.personal_access_tokens.create!(attributes)
finish('created', token: token.token, expires_at: token.expires_at.iso8601)
