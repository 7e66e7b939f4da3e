package shared

import (
	"errors"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DeliveryReason classifies why a platform did not take a reply.
type DeliveryReason string

// The delivery failure reasons.
const (
	// DeliveryForbidden: the platform refused (missing permissions, the
	// user blocked the bot): sending again will fail the same way.
	DeliveryForbidden DeliveryReason = "forbidden"
	// DeliveryNotFound: the conversation or thread is gone.
	DeliveryNotFound DeliveryReason = "not_found"
	// DeliveryRateLimited: the platform asked to wait (RetryAfter) longer
	// than the reply could.
	DeliveryRateLimited DeliveryReason = "rate_limited"
	// DeliveryUnavailable: the platform failed (5xx, network).
	DeliveryUnavailable DeliveryReason = "unavailable"
	// DeliveryTooLarge: the reply is larger than the platform takes.
	DeliveryTooLarge DeliveryReason = "too_large"
	// DeliveryRejected: the platform refused the request otherwise (4xx).
	DeliveryRejected DeliveryReason = "rejected"
)

// DeliveryError is a reply the platform did not take, classified so that
// the host can tell the user and mark the turn. A plugin's Send returns it
// (a *FatalError instead when the credentials are gone); it crosses the
// wire as a gRPC status with an ErrorInfo detail and comes out of the
// host's client as a *DeliveryError again (errors.As).
type DeliveryError struct {
	Reason DeliveryReason
	// Message says what happened and what to do, fit for logs and users.
	Message string
	// RetryAfter is the wait the platform asked for (DeliveryRateLimited).
	RetryAfter time.Duration
	// Posted is how many parts of the reply were posted before the failure.
	Posted int
	// Err is the cause; it stays in the plugin.
	Err error
}

// Error returns Message.
func (e *DeliveryError) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *DeliveryError) Unwrap() error { return e.Err }

const deliveryDomain = "gateway.plughost.dev/delivery"

// GRPCStatus is how the error crosses the wire.
func (e *DeliveryError) GRPCStatus() *status.Status {
	st := status.New(codes.FailedPrecondition, e.Message)
	info := &errdetails.ErrorInfo{Reason: string(e.Reason), Domain: deliveryDomain, Metadata: map[string]string{
		"posted": strconv.Itoa(e.Posted),
	}}
	if e.RetryAfter > 0 {
		info.Metadata["retry_after_ms"] = strconv.FormatInt(e.RetryAfter.Milliseconds(), 10)
	}
	if withInfo, err := st.WithDetails(info); err == nil {
		return withInfo
	}
	return st
}

// deliveryFromStatus turns a gRPC error carrying a DeliveryError back into
// one; other errors come back unchanged.
func deliveryFromStatus(err error) error {
	var de *DeliveryError
	if err == nil || errors.As(err, &de) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != deliveryDomain {
			continue
		}
		de := &DeliveryError{Reason: DeliveryReason(info.GetReason()), Message: st.Message(), Err: err}
		de.Posted, _ = strconv.Atoi(info.GetMetadata()["posted"])
		if ms, err := strconv.ParseInt(info.GetMetadata()["retry_after_ms"], 10, 64); err == nil {
			de.RetryAfter = time.Duration(ms) * time.Millisecond
		}
		return de
	}
	return err
}
