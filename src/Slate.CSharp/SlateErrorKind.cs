namespace Slate;

/// <summary>The stable classification of every Slate failure.</summary>
public enum SlateErrorKind
{
    /// <summary>An optimistic transaction conflicted at commit; retry the transaction.</summary>
    Transaction,
    /// <summary>The client is closed; see <see cref="CloseReason"/>.</summary>
    Closed,
    /// <summary>The object store failed after retries; retrying later may succeed.</summary>
    Unavailable,
    /// <summary>Bad arguments or configuration; do not retry.</summary>
    Invalid,
    /// <summary>Corrupt or incompatible persisted data; do not retry.</summary>
    Data,
    /// <summary>An invariant inside Slate was violated (a bug).</summary>
    Internal,
}

/// <summary>Why a client is closed.</summary>
public enum CloseReason
{
    /// <summary>Closed by the application.</summary>
    Clean,
    /// <summary>A newer writer took over the database.</summary>
    Fenced,
    /// <summary>A background task crashed.</summary>
    Panic,
}
