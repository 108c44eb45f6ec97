package console

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"credvault/internal/credvault"
)

// activityDays is the period of the Activity page.
const activityDays = 7

// reasonRow is one refusal reason's total on the Activity page.
type reasonRow struct {
	Code  string // the API error code the refusals answered
	Label string
	Count int64
}

type activityData struct {
	A           *credvault.OrgActivity
	Checks      *chart
	Refusals    *chart
	Total       int64
	Refused     int64
	RateLimited int64
	Reasons     []reasonRow
}

// handleActivity is the org's Activity page (owners and admins): key
// checks per day, refusals by reason, rate-limit hits, the busiest keys
// and integrations, and the audit events of the last 7 days.
func (c *Console) handleActivity(ctx *fiber.Ctx, v *view) error {
	a, err := c.cfg.Services.Activity.Activity(ctx.UserContext(), activityDays)
	if err != nil {
		return c.fail(ctx, v, err)
	}
	by := map[string]credvault.KeyDayCount{}
	d := activityData{A: a}
	var reasons [4]int64
	for _, r := range a.Days {
		by[r.Day.UTC().Format(time.DateOnly)] = r
		d.Total += r.Valid + r.Refused + r.RateLimited
		d.Refused += r.Refused
		d.RateLimited += r.RateLimited
		for i, n := range []int64{r.Revoked, r.Expired, r.KeyDisabled, r.IntegrationDisabled} {
			reasons[i] += n
		}
	}
	checks := fillDays(a.Since, activityDays, func(day time.Time) []int64 {
		r := by[day.Format(time.DateOnly)]
		return []int64{r.Valid, r.Refused, r.RateLimited}
	})
	d.Checks = newChart(checks, []series{{Name: "allowed", Class: "s0"}, {Name: "refused", Class: "s1"}, {Name: "rate-limited", Class: "s2"}},
		"No key checks in the last 7 days. Each verification of the org's keys shows up here, by outcome.")
	refusals := fillDays(a.Since, activityDays, func(day time.Time) []int64 {
		r := by[day.Format(time.DateOnly)]
		return []int64{r.Revoked, r.Expired, r.KeyDisabled, r.IntegrationDisabled, r.RateLimited}
	})
	d.Refusals = newChart(refusals, []series{{Name: "revoked", Class: "s3"}, {Name: "expired", Class: "s4"},
		{Name: "key disabled", Class: "s5"}, {Name: "integration disabled", Class: "s1"}, {Name: "rate-limited", Class: "s2"}},
		"No refusals in the last 7 days.")
	for i, r := range []reasonRow{
		{Code: "revoked_api_key", Label: "Revoked key"}, {Code: "expired_api_key", Label: "Expired key"},
		{Code: "api_key_disabled", Label: "Key disabled"}, {Code: "integration_disabled", Label: "Integration disabled"},
	} {
		r.Count = reasons[i]
		d.Reasons = append(d.Reasons, r)
	}
	d.Reasons = append(d.Reasons, reasonRow{Code: "rate_limited", Label: "Rate limit hit", Count: d.RateLimited})
	v.Title, v.Nav, v.Data = "Activity", "activity", d
	return c.render(ctx, fiber.StatusOK, "activity", v)
}
