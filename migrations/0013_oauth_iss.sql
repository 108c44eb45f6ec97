-- RFC 9207 (OAuth 2.0 Authorization Server Issuer Identification): when
-- a provider's discovered metadata says
-- authorization_response_iss_parameter_supported, every authorization
-- response must carry iss, and credvault refuses a callback without it.
ALTER TABLE oauth_apps ADD COLUMN iss_required boolean NOT NULL DEFAULT false;
