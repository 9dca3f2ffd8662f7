/// Key ranges of scans and SST key spans, with the validation rules of SPEC §8.
namespace Slate.Model

open System

/// A range of keys in unsigned byte order (SPEC §8): the byte strings `k` with `Start ≤/< k` and
/// `k ≤/< End`.
///
/// Design choice: an abbreviation of the manifest's `BytesRange` (Types.fs, unchanged), so one
/// bounds type serves scans, SST key spans and a clone's `VisibleRange`, and record expressions
/// `{ Start = ..; End = .. }` are never ambiguous. Ranges built by `KeyRange.create`,
/// `KeyRange.ofBounds`, `KeyRange.prefix`, `KeyRange.withinPrefix` (of a non-empty subrange) and
/// `KeyRange.intersect` are non-empty and have an empty inclusive start normalised to
/// `Unbounded`; every function of the module is nevertheless total and exact for any bounds,
/// empty or inverted ones included. Bound arrays are treated as immutable and must not be mutated
/// once they are in a range (`create` and `prefix` copy their inputs).
type KeyRange = BytesRange

/// Functions over `KeyRange` (SPEC §8: range and prefix rules).
[<RequireQualifiedAccess>]
module KeyRange =

    /// The error message for a range whose start key is greater than its end key.
    [<Literal>]
    let StartGreaterThanEnd = "range start must not be greater than range end"

    /// The error message for a range that contains no byte string.
    [<Literal>]
    let MustBeNonEmpty = "range must be non-empty"

    /// Every key.
    let all: KeyRange =
        { Start = KeyBound.Unbounded
          End = KeyBound.Unbounded }

    /// True when `b = a ‖ 0x00`, the immediate successor of `a` in byte order (no byte string
    /// lies strictly between `a` and `b`).
    let isSuccessor (a: byte[]) (b: byte[]) : bool =
        b.Length = a.Length + 1
        && b[a.Length] = 0uy
        && ReadOnlySpan<byte>(b, 0, a.Length).SequenceEqual(ReadOnlySpan<byte>(a))

    /// True when no byte string lies in the range. Exact for any bounds: `(a, a ‖ 0x00)` is empty,
    /// `(-∞, "")` is empty, `(-∞, ""]` holds only the empty string and is not empty.
    let isEmpty (r: KeyRange) : bool =
        match r.Start, r.End with
        | KeyBound.Unbounded, KeyBound.Excluded e -> e.Length = 0
        | KeyBound.Unbounded, _
        | _, KeyBound.Unbounded -> false
        | KeyBound.Included s, KeyBound.Included e -> Bytes.compare s e > 0
        | KeyBound.Included s, KeyBound.Excluded e
        | KeyBound.Excluded s, KeyBound.Included e -> Bytes.compare s e >= 0
        | KeyBound.Excluded s, KeyBound.Excluded e -> Bytes.compare s e >= 0 || isSuccessor s e

    let private normaliseStart (b: KeyBound) : KeyBound =
        match b with
        | KeyBound.Included s when s.Length = 0 -> KeyBound.Unbounded
        | _ -> b

    /// Validates bounds as SPEC §8 demands: both keys present and start > end →
    /// `Error StartGreaterThanEnd`; no byte string inside → `Error MustBeNonEmpty`. An inclusive
    /// empty start becomes `Unbounded`. The arrays are not copied.
    let ofBounds (start: KeyBound) (finish: KeyBound) : Result<KeyRange, string> =
        let keyOf b =
            match b with
            | KeyBound.Included k
            | KeyBound.Excluded k -> ValueSome k
            | KeyBound.Unbounded -> ValueNone

        match keyOf start, keyOf finish with
        | ValueSome s, ValueSome e when Bytes.compare s e > 0 -> Error StartGreaterThanEnd
        | _ ->
            let r =
                { Start = normaliseStart start
                  End = finish }

            if isEmpty r then Error MustBeNonEmpty else Ok r

    /// The range of API.md `KeyRange.Create(start, end, startInclusive, endInclusive)`: `None` (or
    /// a null array) is unbounded; an empty inclusive start is unbounded. Errors as `ofBounds`.
    /// The key arrays are copied.
    let create
        (start: byte[] option)
        (startInclusive: bool)
        (endKey: byte[] option)
        (endInclusive: bool)
        : Result<KeyRange, string> =
        let bound (k: byte[] option) (inclusive: bool) =
            match k with
            | Some k when not (isNull k) ->
                let k = Array.copy k

                if inclusive then
                    KeyBound.Included k
                else
                    KeyBound.Excluded k
            | _ -> KeyBound.Unbounded

        ofBounds (bound start startInclusive) (bound endKey endInclusive)

    /// The smallest byte string greater than every string starting with `p` (`p + 1`): trailing
    /// 0xFF bytes are dropped and the last remaining byte is incremented. `None` when `p` is empty
    /// or all 0xFF (no such string: the prefix range is unbounded above).
    let prefixSuccessor (p: byte[]) : byte[] option =
        let mutable n = p.Length

        while n > 0 && p[n - 1] = 0xFFuy do
            n <- n - 1

        if n = 0 then
            None
        else
            let a = Array.sub p 0 n
            a[n - 1] <- a[n - 1] + 1uy
            Some a

    /// The keys starting with `p`: `[p, p + 1)` (SPEC §8). An empty prefix is `all`; an all-0xFF
    /// prefix has an unbounded end. Never empty.
    let prefix (p: byte[]) : KeyRange =
        { Start =
            (if p.Length = 0 then
                 KeyBound.Unbounded
             else
                 KeyBound.Included(Array.copy p))
          End =
            match prefixSuccessor p with
            | Some e -> KeyBound.Excluded e
            | None -> KeyBound.Unbounded }

    /// The range of `ScanPrefix(p, subrange)` (API.md): the subrange's bounds are suffixes appended
    /// to `p`, and an unbounded side becomes the corresponding side of `prefix p`. Contains exactly
    /// the keys `p ‖ s` with `s` in `sub`; non-empty whenever `sub` is.
    let withinPrefix (p: byte[]) (sub: KeyRange) : KeyRange =
        let whole = prefix p
        let cat (s: byte[]) = Array.append p s

        { Start =
            match sub.Start with
            | KeyBound.Unbounded -> whole.Start
            | KeyBound.Included s -> normaliseStart (KeyBound.Included(cat s))
            | KeyBound.Excluded s -> KeyBound.Excluded(cat s)
          End =
            match sub.End with
            | KeyBound.Unbounded -> whole.End
            | KeyBound.Included e -> KeyBound.Included(cat e)
            | KeyBound.Excluded e -> KeyBound.Excluded(cat e) }

    /// True when `key` lies before the start bound.
    let isBelowStartSpan (r: KeyRange) (key: ReadOnlySpan<byte>) : bool =
        match r.Start with
        | KeyBound.Unbounded -> false
        | KeyBound.Included s -> key.SequenceCompareTo(ReadOnlySpan<byte>(s)) < 0
        | KeyBound.Excluded s -> key.SequenceCompareTo(ReadOnlySpan<byte>(s)) <= 0

    /// True when `key` lies after the end bound.
    let isAboveEndSpan (r: KeyRange) (key: ReadOnlySpan<byte>) : bool =
        match r.End with
        | KeyBound.Unbounded -> false
        | KeyBound.Included e -> key.SequenceCompareTo(ReadOnlySpan<byte>(e)) > 0
        | KeyBound.Excluded e -> key.SequenceCompareTo(ReadOnlySpan<byte>(e)) >= 0

    /// True when `key` lies inside the range.
    let containsSpan (r: KeyRange) (key: ReadOnlySpan<byte>) : bool =
        not (isBelowStartSpan r key) && not (isAboveEndSpan r key)

    /// True when `key` lies before the start bound (every key ≤ it does too).
    let isBelowStart (r: KeyRange) (key: byte[]) : bool =
        isBelowStartSpan r (ReadOnlySpan<byte>(key))

    /// True when `key` lies after the end bound (every key ≥ it does too).
    let isAboveEnd (r: KeyRange) (key: byte[]) : bool =
        isAboveEndSpan r (ReadOnlySpan<byte>(key))

    /// True when `key` lies inside the range.
    let contains (r: KeyRange) (key: byte[]) : bool =
        containsSpan r (ReadOnlySpan<byte>(key))

    // The tighter of two lower bounds: the larger key; on equal keys the exclusive one.
    let private maxStart (a: KeyBound) (b: KeyBound) : KeyBound =
        match a, b with
        | KeyBound.Unbounded, x
        | x, KeyBound.Unbounded -> x
        | (KeyBound.Included x | KeyBound.Excluded x), (KeyBound.Included y | KeyBound.Excluded y) ->
            let c = Bytes.compare x y

            if c > 0 then
                a
            elif c < 0 then
                b
            else
                match a with
                | KeyBound.Excluded _ -> a
                | _ -> b

    // The tighter of two upper bounds: the smaller key; on equal keys the exclusive one.
    let private minEnd (a: KeyBound) (b: KeyBound) : KeyBound =
        match a, b with
        | KeyBound.Unbounded, x
        | x, KeyBound.Unbounded -> x
        | (KeyBound.Included x | KeyBound.Excluded x), (KeyBound.Included y | KeyBound.Excluded y) ->
            let c = Bytes.compare x y

            if c < 0 then
                a
            elif c > 0 then
                b
            else
                match a with
                | KeyBound.Excluded _ -> a
                | _ -> b

    /// The keys in both ranges; `None` when they share no byte string.
    let intersect (a: KeyRange) (b: KeyRange) : KeyRange option =
        let r =
            { Start = normaliseStart (maxStart a.Start b.Start)
              End = minEnd a.End b.End }

        if isEmpty r then None else Some r

    /// True when the ranges share at least one byte string.
    let overlaps (a: KeyRange) (b: KeyRange) : bool = (intersect a b).IsSome

    /// True when the range meets the closed interval `[first, last]` (an SST's first and last
    /// key). False when `first > last`.
    let overlapsKeys (first: byte[]) (last: byte[]) (r: KeyRange) : bool =
        overlaps
            r
            { Start = KeyBound.Included first
              End = KeyBound.Included last }

    /// Interval notation with hex keys, e.g. `[6162, 6163)` or `(-inf, +inf)`, for messages.
    let describe (r: KeyRange) : string =
        let lo =
            match r.Start with
            | KeyBound.Unbounded -> "(-inf"
            | KeyBound.Included s -> "[" + Bytes.toHex s
            | KeyBound.Excluded s -> "(" + Bytes.toHex s

        let hi =
            match r.End with
            | KeyBound.Unbounded -> "+inf)"
            | KeyBound.Included e -> Bytes.toHex e + "]"
            | KeyBound.Excluded e -> Bytes.toHex e + ")"

        lo + ", " + hi
