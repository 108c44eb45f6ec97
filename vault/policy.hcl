# Least-privilege Vault policy for credvault, for the default mount "transit"
# and key "credvault" (change both paths if CREDVAULT_TRANSIT_MOUNT or
# CREDVAULT_TRANSIT_KEY differ).
#
#   vault policy write credvault vault/policy.hcl
#
# "update" without "create" on encrypt: a typo in the key name can never make
# Vault create a fresh (non-derived) key on the fly. Also set
#   vault write transit/config/keys disable_upsert=true

path "transit/encrypt/credvault" {
  capabilities = ["update"]
}

path "transit/decrypt/credvault" {
  capabilities = ["update"]
}

# The rewrap job (`credvault rewrap`): re-encrypt under the latest version.
path "transit/rewrap/credvault" {
  capabilities = ["update"]
}

# Start-up check (the key must exist and be derived) and the rewrap job's
# view of latest_version.
path "transit/keys/credvault" {
  capabilities = ["read"]
}

# Raising min_decryption_version after a complete rewrap, and nothing else:
# allowed_parameters refuses (403) every other field of the key's config,
# among them the irreversible exportable and allow_plaintext_backup, and
# deletion_allowed. Remove this block if an operator does that step by hand.
path "transit/keys/credvault/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
  }
}

# Keep its own token alive.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# JWT API keys: sign with the ed25519 key CREDVAULT_SIGNING_KEY (default
# "credvault-jwt"; change both paths if it differs). The private key never
# leaves Vault; credvault only asks it to sign.
path "transit/sign/credvault-jwt" {
  capabilities = ["update"]
}

# Start-up check (the signing key must exist and be a non-derived ed25519
# key), its public keys for verification and the JWKS, and its
# min_decryption_version (older versions stop verifying).
path "transit/keys/credvault-jwt" {
  capabilities = ["read"]
}
