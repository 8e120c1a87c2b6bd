# frozen_string_literal: true

# Uploads one file next to GitLab's backup archives, as GitLab uploads them
# (lib/backup/remote_storage.rb): the connection, bucket and server-side encryption of
# gitlab.rb's backup_upload_* settings, the VM's own identity, GitLab's storage library (Fog).
#   gitlab-rails runner upload_backup_file.rb FILE KEY
# Prints one JSON line; no secret is read from or written to the command line.
require 'json'

path, key = ARGV.last(2)
raise ArgumentError, 'usage: upload_backup_file.rb FILE KEY' if path.to_s.empty? || key.to_s.empty?

upload = Gitlab.config.backup.upload
raise 'gitlab.rb has no backup_upload_connection' if upload.connection.blank?

config = ObjectStorage::Config.new(upload)
connection = ::Fog::Storage.new(config.credentials)
directory =
  if connection.service == ::Fog::Storage::Local
    connection.directories.create(key: upload.remote_directory)
  else
    connection.directories.new(key: upload.remote_directory)
  end

File.open(path) do |body|
  attributes = {
    key: key,
    body: body,
    multipart_chunk_size: upload.multipart_chunk_size,
    storage_class: upload.storage_class
  }
  attributes.merge!(config.fog_attributes) if config.aws_server_side_encryption_enabled?
  # As GitLab does: Google's uniform bucket-level access refuses ACLs; objects stay private.
  attributes[:public] = false unless upload.connection.provider.to_s.casecmp?('google')
  directory.files.create(attributes) || raise("uploading #{key} to #{upload.remote_directory} failed")
end

puts({ status: 'uploaded', directory: upload.remote_directory, key: key }.to_json)
