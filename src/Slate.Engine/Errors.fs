/// The one public error type (API.md "Errors"), shared by the F# engine API and the C# facade.
namespace Slate

open System

/// The stable classification of every Slate failure.
type SlateErrorKind =
    /// An optimistic transaction conflicted at commit; retry the whole transaction.
    | Transaction = 0
    /// The client is closed; see `CloseReason`. Do not retry on this client.
    | Closed = 1
    /// The object store failed after retries, or an update timed out; retrying later may succeed.
    | Unavailable = 2
    /// Bad arguments or configuration; retrying the same call fails again.
    | Invalid = 3
    /// Corrupt or incompatible persisted data; retrying fails again.
    | Data = 4
    /// An invariant inside Slate was violated (a bug).
    | Internal = 5

/// Why a client is closed.
type CloseReason =
    /// Closed by the application.
    | Clean = 0
    /// A newer writer (or compactor) took over the database.
    | Fenced = 1
    /// A background task crashed.
    | Panic = 2

/// Every failure of Slate surfaces as this exception. `Kind` is the contract; the message names
/// the object and the cause.
type SlateException(kind: SlateErrorKind, closeReason: Nullable<CloseReason>, message: string, inner: exn) =
    inherit Exception(message, inner)

    /// A failure of the given kind.
    new(kind: SlateErrorKind, message: string) = SlateException(kind, Nullable(), message, null)

    /// A failure of the given kind caused by another exception.
    new(kind: SlateErrorKind, message: string, inner: exn) = SlateException(kind, Nullable(), message, inner)

    /// The kind of failure.
    member _.Kind: SlateErrorKind = kind

    /// For `Closed`, why the client is closed.
    member _.CloseReason: Nullable<CloseReason> = closeReason

    /// A `Closed` failure with its reason.
    static member Closed(reason: CloseReason, message: string) : SlateException =
        SlateException(SlateErrorKind.Closed, Nullable reason, message, null)

    /// An `Invalid` failure.
    static member Invalid(message: string) : SlateException =
        SlateException(SlateErrorKind.Invalid, message)

    /// A `Data` failure.
    static member Data(message: string) : SlateException =
        SlateException(SlateErrorKind.Data, message)
