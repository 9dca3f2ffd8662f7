/// Object names inside a database folder (SPEC §3). Storage format: names and their parse rules
/// are shared with SlateDB.
namespace Slate.Model

open System

/// A parsed object name of a database folder.
[<RequireQualifiedAccess>]
type ObjectName =
    /// `manifest/{id:D20}.manifest`
    | Manifest of id: uint64
    /// `compactions/{id:D20}.compactions`
    | Compactions of id: uint64
    /// `wal/{id:D20}.sst`
    | Wal of id: uint64
    /// `compacted/{ULID}.sst`
    | Compacted of Ulid
    /// `gc/manifest.boundary`
    | ManifestBoundary
    /// `gc/compactions.boundary`
    | CompactionsBoundary

/// Building and parsing object keys (`<db path>/<dir>/<name>`).
[<RequireQualifiedAccess>]
module Paths =
    /// Folder of manifests.
    [<Literal>]
    let ManifestDir = "manifest"

    /// Folder of compactor-state files.
    [<Literal>]
    let CompactionsDir = "compactions"

    /// Folder of WAL SSTs.
    [<Literal>]
    let WalDir = "wal"

    /// Folder of L0 and sorted-run SSTs.
    [<Literal>]
    let CompactedDir = "compacted"

    /// Folder of GC boundary files.
    [<Literal>]
    let GcDir = "gc"

    let private d20 (id: uint64) = id.ToString("D20")

    /// The name of an object relative to the database folder (e.g. `wal/00000000000000000001.sst`).
    let relative (name: ObjectName) : string =
        match name with
        | ObjectName.Manifest id -> ManifestDir + "/" + d20 id + ".manifest"
        | ObjectName.Compactions id -> CompactionsDir + "/" + d20 id + ".compactions"
        | ObjectName.Wal id -> WalDir + "/" + d20 id + ".sst"
        | ObjectName.Compacted u -> CompactedDir + "/" + Ulid.toString u + ".sst"
        | ObjectName.ManifestBoundary -> GcDir + "/manifest.boundary"
        | ObjectName.CompactionsBoundary -> GcDir + "/compactions.boundary"

    /// Normalises a database path: no leading or trailing '/', no empty segments.
    let normalizeDbPath (dbPath: string) : string =
        if isNull dbPath then
            nullArg "dbPath"

        dbPath.Split('/', StringSplitOptions.RemoveEmptyEntries) |> String.concat "/"

    /// The full object key of `name` in the database at `dbPath`.
    let key (dbPath: string) (name: ObjectName) : string =
        let p = normalizeDbPath dbPath
        if p = "" then relative name else p + "/" + relative name

    /// The listing prefix of a folder of the database (`<db>/<dir>/`).
    let dirPrefix (dbPath: string) (dir: string) : string =
        let p = normalizeDbPath dbPath
        if p = "" then dir + "/" else p + "/" + dir + "/"

    let private allDigits (s: string) (start: int) (len: int) =
        let mutable ok = true

        for i in start .. start + len - 1 do
            if s[i] < '0' || s[i] > '9' then
                ok <- false

        ok

    let private parseD20 (file: string) (suffix: string) : uint64 option =
        if
            file.Length = 20 + suffix.Length
            && file.EndsWith(suffix, StringComparison.Ordinal)
            && allDigits file 0 20
        then
            match UInt64.TryParse(file.AsSpan(0, 20)) with
            | true, v -> Some v
            | _ -> None
        else
            None

    /// Parses a file name inside a given folder (`dir` is one of the *Dir constants). Strict:
    /// anything that does not match the folder's rule is None (ignored by callers).
    let parseFile (dir: string) (file: string) : ObjectName option =
        match dir with
        | ManifestDir ->
            parseD20 file ".manifest"
            |> Option.filter (fun id -> id >= 1UL)
            |> Option.map ObjectName.Manifest
        | CompactionsDir -> parseD20 file ".compactions" |> Option.map ObjectName.Compactions
        | WalDir -> parseD20 file ".sst" |> Option.map ObjectName.Wal
        | CompactedDir ->
            if file.Length = 30 && file.EndsWith(".sst", StringComparison.Ordinal) then
                Ulid.tryParse (file.Substring(0, 26)) |> Option.map ObjectName.Compacted
            else
                None
        | GcDir ->
            match file with
            | "manifest.boundary" -> Some ObjectName.ManifestBoundary
            | "compactions.boundary" -> Some ObjectName.CompactionsBoundary
            | _ -> None
        | _ -> None

    /// Parses a full object key of the database at `dbPath`; None for foreign or malformed names.
    let parseKey (dbPath: string) (objectKey: string) : ObjectName option =
        let p = normalizeDbPath dbPath

        let rel =
            if p = "" then
                Some objectKey
            elif objectKey.StartsWith(p + "/", StringComparison.Ordinal) then
                Some(objectKey.Substring(p.Length + 1))
            else
                None

        match rel with
        | None -> None
        | Some rel ->
            match rel.Split('/') with
            | [| dir; file |] -> parseFile dir file
            | _ -> None
