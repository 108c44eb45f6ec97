package credvault

import (
	"time"
)

// Placements: where the injector puts a credential's value.
const (
	PlacementHeader = "header" // param_name: value_prefix + value
	PlacementQuery  = "query"  // ?param_name=value
	PlacementBearer = "bearer" // Authorization: Bearer value
	PlacementBasic  = "basic"  // Authorization: Basic base64(username ":" value), RFC 7617
)

// Sharing modes and share permissions. "use" lets a user inject the
// credential and see its metadata; "manage" also lets them edit, rotate
// and share it. Nobody reads a value back.
const (
	SharingPersonal = "personal"
	SharingTeam     = "team"
	SharingMembers  = "members"

	PermissionUse    = "use"
	PermissionManage = "manage"
)

// Credential is an outbound credential's metadata and its value's
// ciphertext (never shown to anyone: the value is write-only).
type Credential struct {
	ID           string
	OrgID        string
	OwnerID      *string
	Name         string
	Service      string
	Placement    string
	ParamName    string
	ValuePrefix  string
	Username     string // placement basic: the user-id half of the pair (not a secret)
	BaseURL      string
	AllowedHosts []string
	Ciphertext   string
	KeyVersion   int
	Hint         string
	Sharing      Sharing
	TestRequest  *TestRequest
	CreatedAt    time.Time
	UpdatedAt    time.Time
	RotatedAt    time.Time
	LastUsedAt   *time.Time // last workflow use (proxy or inject); a test does not count
	// Kind is KindStatic or KindOAuth2; an oauth2 credential's value is
	// its current access token and OAuth describes its connection.
	Kind  string
	OAuth *OAuthConnection

	memo *Memo // set by the value cache on the copy it keeps; see Memo
}

// TestWorkflowID labels the uses a credential test makes. They appear in
// the usage list, but are not workflow use: they neither set last_used_at
// nor hold off a delete.
const TestWorkflowID = "credvault:test"

// Sharing says who besides the owner and the org's admins may use or
// manage a credential.
type Sharing struct {
	Mode    string  `json:"mode"`
	Members []Share `json:"members"`
}

// Share grants one user a permission on a credential.
type Share struct {
	UserID     string `json:"user_id" db:"user_id"`
	Permission string `json:"permission" db:"permission"`
}

// PermissionOf is what p may do with c: PermissionManage, PermissionUse,
// or "" (nothing; c does not even exist for p). Owners and admins of the
// org, service keys and the credential's owner manage it; team sharing
// lets every member use it; a member share grants its permission.
func (c *Credential) PermissionOf(p *Principal) string {
	if p == nil || p.OrgID != c.OrgID {
		return ""
	}
	if p.Manager() || (c.OwnerID != nil && *c.OwnerID == p.UserID) {
		return PermissionManage
	}
	perm := ""
	if c.Sharing.Mode == SharingTeam {
		perm = PermissionUse
	}
	if c.Sharing.Mode != SharingPersonal {
		for _, s := range c.Sharing.Members {
			if s.UserID == p.UserID {
				if s.Permission == PermissionManage {
					return PermissionManage
				}
				perm = PermissionUse
			}
		}
	}
	return perm
}

// Usage is one use of a credential by the injector.
type Usage struct {
	ID              int64     `json:"id" db:"id"`
	CredentialID    string    `json:"credential_id" db:"credential_id"`
	OrgID           string    `json:"-" db:"org_id"`
	WorkflowID      string    `json:"workflow_id" db:"workflow_id"`
	NodeID          string    `json:"node_id" db:"node_id"`
	UserID          *string   `json:"user_id" db:"user_id"`
	DestinationHost string    `json:"destination_host" db:"destination_host"`
	Status          int       `json:"status" db:"status"`
	LatencyMS       int       `json:"latency_ms" db:"latency_ms"`
	CreatedAt       time.Time `json:"created_at" db:"created_at"`
}

// WorkflowUse summarises a workflow's recent use of a credential, for the
// delete protection.
type WorkflowUse struct {
	WorkflowID string    `json:"workflow_id" db:"workflow_id"`
	Uses       int       `json:"uses" db:"uses"`
	LastUsedAt time.Time `json:"last_used_at" db:"last_used_at"`
}
