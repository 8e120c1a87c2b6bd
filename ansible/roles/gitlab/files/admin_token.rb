# Keeps one administrator personal access token for automation (scope api), idempotently.
# Run as `gitlab-rails runner <this file>` (Rails runs as the git user, which must be able to
# read this file). The input comes on standard input, one JSON document, so that no secret
# appears on a command line or in an environment:
#   {"user": "root", "name": "duo-automation", "expires_in_days": 365, "min_valid_days": 30,
#    "current": "<the token the controller holds; empty or absent when it holds none>"}
# Output, last line, JSON: {"status":"exists"} when the held token is active, has scope api,
# belongs to the user and stays valid beyond the minimum; otherwise tokens of that name are
# revoked and {"status":"created","token":"..."} is printed (GitLab keeps only a digest, so a
# token the controller lost cannot be read back: it is replaced). {"status":"error"} (exit 1)
# names what is wrong, never quoting the input.
require 'json'

def finish(status, **fields)
  puts({ status: status }.merge(fields).to_json)
  exit(status == 'error' ? 1 : 0)
end

def days(input, key)
  Integer(input[key].to_s, 10)
rescue ArgumentError
  finish('error', message: "#{key} is not a whole number of days")
end

input = begin
  JSON.parse($stdin.read)
rescue JSON::ParserError # its message quotes the input, which holds a token
  finish('error', message: 'standard input is not a JSON document')
end
finish('error', message: 'standard input is not a JSON object') unless input.is_a?(Hash)
missing = %w[user name expires_in_days min_valid_days].reject { |key| input.key?(key) }
finish('error', message: "missing input: #{missing.join(', ')}") unless missing.empty?

username = input['user'].to_s
name = input['name'].to_s
min_valid_until = Date.today + days(input, 'min_valid_days')
expires_at = Date.today + days(input, 'expires_in_days')
current = input['current'].to_s.strip

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
