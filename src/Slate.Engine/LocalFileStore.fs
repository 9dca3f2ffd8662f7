namespace Slate.Engine

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.IO
open System.IO.Enumeration
open System.Runtime.InteropServices
open System.Threading
open System.Threading.Tasks
open Microsoft.Win32.SafeHandles

/// The few system calls .NET does not expose: hard links and directory fsync.
module private Native =

    [<DllImport("libc", EntryPoint = "link", SetLastError = true)>]
    extern int unixLink(
        [<MarshalAs(UnmanagedType.LPUTF8Str)>] string oldPath,
        [<MarshalAs(UnmanagedType.LPUTF8Str)>] string newPath
    )

    [<DllImport("libc", EntryPoint = "open", SetLastError = true)>]
    extern int unixOpen([<MarshalAs(UnmanagedType.LPUTF8Str)>] string path, int flags)

    [<DllImport("libc", EntryPoint = "fsync", SetLastError = true)>]
    extern int unixFsync(int fd)

    [<DllImport("libc", EntryPoint = "close", SetLastError = true)>]
    extern int unixClose(int fd)

    [<DllImport("kernel32.dll", EntryPoint = "CreateHardLinkW", CharSet = CharSet.Unicode, SetLastError = true)>]
    extern bool winCreateHardLink(string newFileName, string existingFileName, nativeint securityAttributes)

    let EPERM = 1
    let ENOENT = 2
    let EINTR = 4
    let EEXIST = 17
    let EXDEV = 18
    let EINVAL = 22
    let EROFS = 30
    let EMLINK = 31
    let ENOTSUP_LINUX = 95
    let ENOTSUP_MAC = 45
    let ERROR_FILE_NOT_FOUND = 2
    let ERROR_PATH_NOT_FOUND = 3
    let ERROR_FILE_EXISTS = 80
    let ERROR_ALREADY_EXISTS = 183

    /// Outcome of `link`: created, the target exists, a parent directory is missing, or another
    /// error (errno / Win32 code and its message).
    type LinkOutcome =
        | Linked
        | TargetExists
        | ParentMissing
        | LinkNotSupported of string
        | LinkFailed of string

    let describe (code: int) : string =
        $"{Marshal.GetPInvokeErrorMessage code} (error {code})"

    /// Creates `target` as a hard link to `existing`, never replacing an existing `target`.
    let rec link (existing: string) (target: string) : LinkOutcome =
        if OperatingSystem.IsWindows() then
            if winCreateHardLink (target, existing, 0n) then
                Linked
            else
                let e = Marshal.GetLastPInvokeError()

                if e = ERROR_FILE_EXISTS || e = ERROR_ALREADY_EXISTS then
                    TargetExists
                elif e = ERROR_PATH_NOT_FOUND || e = ERROR_FILE_NOT_FOUND then
                    ParentMissing
                else
                    LinkFailed(describe e)
        elif unixLink (existing, target) = 0 then
            Linked
        else
            let e = Marshal.GetLastPInvokeError()

            if e = EINTR then
                link existing target
            elif e = EEXIST then
                TargetExists
            elif e = ENOENT then
                ParentMissing
            elif e = EPERM || e = EXDEV || e = EMLINK || e = ENOTSUP_LINUX || e = ENOTSUP_MAC then
                LinkNotSupported(describe e)
            else
                LinkFailed(describe e)

    /// Makes the entries of directory `dir` durable (fsync on the directory). A no-op on Windows
    /// (NTFS journals its metadata) and on file systems that refuse directory fsync.
    let fsyncDirectory (dir: string) : unit =
        if not (OperatingSystem.IsWindows()) then
            let fd = unixOpen (dir, 0) // O_RDONLY

            if fd < 0 then
                let e = Marshal.GetLastPInvokeError()
                raise (IOException($"cannot open directory '{dir}' for fsync: {describe e}", e))

            try
                if unixFsync fd <> 0 then
                    let e = Marshal.GetLastPInvokeError()

                    if e <> EINVAL && e <> EROFS then
                        raise (IOException($"fsync of directory '{dir}' failed: {describe e}", e))
            finally
                unixClose fd |> ignore

/// Per-root state shared by every `LocalFileObjectStore` of one process on the same root: an
/// in-process gate in front of the OS file lock, and the last mtime stamp handed out.
[<AllowNullLiteral>]
type private RootState() =
    member val Gate = new SemaphoreSlim(1, 1)
    member val LastStamp = 0L with get, set

/// An `IObjectStore` on a local directory, the embedded default backend (SPEC §2.5).
///
/// Layout: object key `a/b/c` is the file `<root>/a/b/c`, the layout SlateDB's local store uses,
/// so both can share a directory. All staging happens in `<root>/.slate-staging/` (never inside a
/// database directory); a crash may leave stray `*.tmp` files there, which are safe to delete.
///
/// - `CreateIfAbsent`: write a staging file, fsync it, create missing parent directories, hard-link
///   it to the target (`AlreadyExists` when the target exists; never replaces), delete the staging
///   file, fsync the target's directory. Atomic across threads and processes.
/// - `Overwrite` and `IfMatch`: under an exclusive OS lock on `<root>/.slate-staging/lock` (plus an
///   in-process gate), compare the current etag (`IfMatch`; mismatch or missing ->
///   `PreconditionFailed`), write and fsync a staging file, rename it over the target, fsync the
///   directory. `DeleteAsync` takes the same lock, so deletes and conditional updates are ordered.
/// - etag = `"<size hex>-<mtime ticks hex>"`; `LastModified` = the file mtime. Every write stamps
///   the file's mtime from the injected clock, strictly increasing within the process and strictly
///   above the mtime of the version it replaces, so successive versions get distinct etags.
/// - User attributes are not supported: a put with non-empty attributes raises `NotSupported`.
/// - `ListAsync` walks the directory under the prefix and skips the staging directory and
///   object_store-style temporary files (`name#<digits>`). Keys that would collide with those
///   (first segment `.slate-staging`, or a last segment ending in `#<digits>`) are rejected with
///   `ArgumentException`.
/// - A key whose path is (or runs through) a directory or file of the wrong kind is reported as
///   `NotFound` on reads and `NotSupported` on writes. Other I/O failures are `Transient`.
type LocalFileObjectStore(root: string, timeProvider: TimeProvider) =
    static let states = ConcurrentDictionary<string, RootState>(StringComparer.Ordinal)

    let root =
        if String.IsNullOrWhiteSpace root then
            nullArg "root"

        if isNull timeProvider then
            nullArg "timeProvider"

        let full = Path.GetFullPath root
        let trimmed = Path.TrimEndingDirectorySeparator full
        trimmed

    let stagingDir = Path.Join(root, LocalFileObjectStore.StagingDirectoryName)
    let lockPath = Path.Join(stagingDir, LocalFileObjectStore.LockFileName)
    let state = states.GetOrAdd(root, (fun _ -> RootState()))

    let describe =
        let slashed = root.Replace('\\', '/')

        if slashed.StartsWith '/' then
            $"file://{slashed}"
        else
            $"file:///{slashed}"

    let isTempName (name: ReadOnlySpan<char>) : bool =
        let hash = name.LastIndexOf '#'

        hash >= 0
        && hash < name.Length - 1
        && (let digits = name.Slice(hash + 1)
            let mutable ok = true

            for c in digits do
                if not (Char.IsAsciiDigit c) then
                    ok <- false

            ok)

    let validateKey (key: string) : unit =
        ObjectKey.validate key
        let first = key.IndexOf '/'
        let firstSegment = if first < 0 then key else key.Substring(0, first)

        if firstSegment = LocalFileObjectStore.StagingDirectoryName then
            invalidArg "key" $"invalid object key '{key}': '{firstSegment}' is reserved by the local store"

        if isTempName (key.AsSpan(key.LastIndexOf '/' + 1)) then
            invalidArg "key" $"invalid object key '{key}': names ending in '#<digits>' are temporary files"

    let pathOf (key: string) : string = Path.Join(root, key)

    let rootLength =
        if Path.EndsInDirectorySeparator root then
            root.Length
        else
            root.Length + 1

    let keyOf (fullPath: string) : string =
        fullPath.Substring(rootLength).Replace('\\', '/')

    let etagOf (size: int64) (mtimeTicks: int64) : string = $"{size:x}-{mtimeTicks:x}"

    let metaOf (key: string) (size: int64) (mtimeUtc: DateTime) : ObjectMeta =
        { Key = key
          Size = size
          LastModified = DateTimeOffset(mtimeUtc.Ticks, TimeSpan.Zero)
          ETag = etagOf size mtimeUtc.Ticks }

    /// The next mtime stamp: the clock, strictly above every stamp handed out on this root and
    /// above `floorTicks`.
    let nextStamp (floorTicks: int64) : int64 =
        lock state (fun () ->
            let t =
                max (timeProvider.GetUtcNow().UtcTicks) (max (state.LastStamp + 1L) (floorTicks + 1L))

            state.LastStamp <- t
            t)

    let ensureStagingDir () : unit =
        if not (Directory.Exists stagingDir) then
            Directory.CreateDirectory stagingDir |> ignore

    /// Creates the missing directories above `target` and makes each new entry durable.
    let ensureParent (key: string) (target: string) : unit =
        let dir = Path.GetDirectoryName target

        if not (Directory.Exists dir) then
            let mutable missing = []
            let mutable d = dir

            while not (isNull d) && not (Directory.Exists d) do
                if File.Exists d then
                    raise (ObjectStoreException.NotSupported(key, $"a parent path '{d}' is a file, not a directory"))

                missing <- d :: missing
                d <- Path.GetDirectoryName d

            Directory.CreateDirectory dir |> ignore

            for created in missing do
                Native.fsyncDirectory (Path.GetDirectoryName created)

    let removeStaging (path: string) : unit =
        try
            File.Delete path
        with :? IOException ->
            () // a stray staging file is harmless

    /// Writes `data` to a fresh staging file with an mtime above `floorTicks`, fsyncs it and returns
    /// its path and etag. The caller deletes the staging file.
    let writeStaged (data: ReadOnlyMemory<byte>) (floorTicks: int64) (ct: CancellationToken) : Task<string * string> =
        task {
            ensureStagingDir ()
            let path = Path.Join(stagingDir, Guid.NewGuid().ToString("N") + ".tmp")
            let mutable written = false

            try
                use handle =
                    File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read)

                do! RandomAccess.WriteAsync(handle, data, 0L, ct)

                let stamp (ticks: int64) =
                    File.SetLastWriteTimeUtc(handle, DateTime(ticks, DateTimeKind.Utc))
                    File.GetLastWriteTimeUtc(handle).Ticks

                let mutable actual = stamp (nextStamp floorTicks)
                // A coarse file system may truncate the stamp: step to the next whole second.
                if actual <= floorTicks then
                    actual <- stamp ((floorTicks / TimeSpan.TicksPerSecond + 1L) * TimeSpan.TicksPerSecond)

                RandomAccess.FlushToDisk handle
                written <- true
                return path, etagOf (int64 data.Length) actual
            finally
                if not written then
                    removeStaging path
        }

    /// Runs `f` under the in-process gate and the exclusive OS lock of the root.
    let withLock (key: string) (f: unit -> Task<'T>) (ct: CancellationToken) : Task<'T> =
        task {
            do! state.Gate.WaitAsync ct

            try
                let mutable handle: SafeFileHandle = null
                let mutable attempts = 0

                while isNull handle do
                    ensureStagingDir ()

                    handle <-
                        try
                            File.OpenHandle(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None)
                        with
                        | :? DirectoryNotFoundException -> null
                        | :? IOException as e when attempts >= 3000 ->
                            raise (ObjectStoreException.Transient(key, "acquiring the store lock", e))
                        | :? IOException -> null

                    if isNull handle then
                        attempts <- attempts + 1
                        do! Task.Delay(min attempts 10, ct)

                use _ = handle
                return! f ()
            finally
                state.Gate.Release() |> ignore
        }

    /// Maps native failures of a read (`isRead`: missing -> `NotFound`) or a write to `ObjectStoreException`.
    let guard (key: string) (operation: string) (isRead: bool) (f: unit -> Task<'T>) : Task<'T> =
        task {
            try
                return! f ()
            with
            | :? FileNotFoundException as e when isRead -> return raise (ObjectStoreException.NotFound(key, e))
            | :? DirectoryNotFoundException as e when isRead -> return raise (ObjectStoreException.NotFound(key, e))
            | :? UnauthorizedAccessException as e when isRead && Directory.Exists(pathOf key) ->
                return raise (ObjectStoreException.NotFound(key, e))
            | :? IOException as e when not isRead && Directory.Exists(pathOf key) ->
                return raise (ObjectStoreException.NotSupported(key, $"the path is a directory ({e.Message})"))
            | :? IOException as e -> return raise (ObjectStoreException.Transient(key, operation, e))
            | :? UnauthorizedAccessException as e -> return raise (ObjectStoreException.Transient(key, operation, e))
        }

    let openRead (path: string) : SafeFileHandle =
        File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite ||| FileShare.Delete)

    let readExactly (key: string) (handle: SafeFileHandle) (offset: int64) (count: int) (ct: CancellationToken) =
        task {
            let buffer = Array.zeroCreate<byte> count
            let mutable filled = 0

            while filled < count do
                let! n = RandomAccess.ReadAsync(handle, buffer.AsMemory(filled), offset + int64 filled, ct)

                if n = 0 then
                    raise (ObjectStoreException.Transient(key, "read", IOException("the file shrank while being read")))

                filled <- filled + n

            return buffer
        }

    let checkSize (key: string) (size: int64) : int =
        if size > int64 Array.MaxLength then
            raise (ObjectStoreException.NotSupported(key, $"objects larger than {Array.MaxLength} bytes ({size})"))

        int size

    let createIfAbsent (key: string) (data: ReadOnlyMemory<byte>) (ct: CancellationToken) : Task<PutResult> =
        task {
            let target = pathOf key
            let! staged, etag = writeStaged data 0L ct

            try
                ct.ThrowIfCancellationRequested()
                let mutable outcome = Native.ParentMissing
                let mutable attempts = 0

                while outcome = Native.ParentMissing && attempts < 5 do
                    ensureParent key target
                    outcome <- Native.link staged target
                    attempts <- attempts + 1

                match outcome with
                | Native.Linked -> Native.fsyncDirectory (Path.GetDirectoryName target)
                | Native.TargetExists when Directory.Exists target ->
                    raise (ObjectStoreException.NotSupported(key, "the path is a directory"))
                | Native.TargetExists -> raise (ObjectStoreException.AlreadyExists key)
                | Native.LinkNotSupported why ->
                    raise (ObjectStoreException.NotSupported(key, $"hard links in '{root}': {why}"))
                | Native.ParentMissing ->
                    raise (
                        ObjectStoreException.Transient(
                            key,
                            "create",
                            IOException("the parent directory keeps vanishing")
                        )
                    )
                | Native.LinkFailed why -> raise (ObjectStoreException.Transient(key, "create", IOException(why)))

                return { ETag = etag }
            finally
                removeStaging staged
        }

    let replace
        (key: string)
        (data: ReadOnlyMemory<byte>)
        (expected: string)
        (ct: CancellationToken)
        : Task<PutResult> =
        withLock
            key
            (fun () ->
                task {
                    let target = pathOf key
                    let current = FileInfo target

                    if Directory.Exists target then
                        raise (ObjectStoreException.NotSupported(key, "the path is a directory"))

                    let floor =
                        if current.Exists then
                            current.LastWriteTimeUtc.Ticks
                        else
                            0L

                    if not (isNull expected) then
                        if not current.Exists then
                            raise (ObjectStoreException.PreconditionFailed(key, "the object does not exist"))

                        let actual = etagOf current.Length floor

                        if not (String.Equals(actual, expected, StringComparison.Ordinal)) then
                            raise (
                                ObjectStoreException.PreconditionFailed(
                                    key,
                                    $"expected etag '{expected}' but the current etag is '{actual}'"
                                )
                            )

                    let! staged, etag = writeStaged data floor ct

                    try
                        ensureParent key target
                        File.Move(staged, target, true)
                        Native.fsyncDirectory (Path.GetDirectoryName target)
                        return { ETag = etag }
                    finally
                        removeStaging staged
                })
            ct

    /// The name of the staging directory directly below the root.
    static member StagingDirectoryName: string = ".slate-staging"

    /// The name of the lock file inside the staging directory.
    static member LockFileName: string = "lock"

    /// A store on `root` whose write stamps come from the system clock.
    new(root: string) = LocalFileObjectStore(root, TimeProvider.System)

    /// The absolute root directory.
    member _.Root: string = root

    interface IObjectStore with
        member _.PutAsync
            (key: string, data: ReadOnlyMemory<byte>, mode: PutMode, attributes, ct: CancellationToken)
            : Task<PutResult> =
            validateKey key
            ObjectStore.validateMode mode

            if ObjectStore.hasAttributes attributes then
                Task.FromException<PutResult>(
                    ObjectStoreException.NotSupported(key, "user attributes on the local file system")
                )
            else
                Task.Run<PutResult>(
                    (fun () ->
                        guard key "put" false (fun () ->
                            match mode with
                            | CreateIfAbsent -> createIfAbsent key data ct
                            | Overwrite -> replace key data null ct
                            | IfMatch etag -> replace key data etag ct)),
                    ct
                )

        member _.GetAsync(key: string, ct: CancellationToken) : Task<GetResult> =
            validateKey key

            guard key "get" true (fun () ->
                task {
                    ct.ThrowIfCancellationRequested()
                    use handle = openRead (pathOf key)
                    let size = RandomAccess.GetLength handle
                    let mtime = File.GetLastWriteTimeUtc handle
                    let! data = readExactly key handle 0L (checkSize key size) ct

                    return
                        { Data = data
                          Meta = metaOf key size mtime }
                })

        member _.GetRangeAsync(key: string, start: int64, endExclusive: int64, ct: CancellationToken) : Task<byte[]> =
            validateKey key
            ObjectStore.validateRange start endExclusive

            guard key "ranged get" true (fun () ->
                task {
                    ct.ThrowIfCancellationRequested()
                    use handle = openRead (pathOf key)
                    let size = RandomAccess.GetLength handle
                    let s = min start size
                    let e = min endExclusive size
                    return! readExactly key handle s (checkSize key (e - s)) ct
                })

        member _.HeadAsync(key: string, ct: CancellationToken) : Task<HeadResult> =
            validateKey key

            guard key "head" true (fun () ->
                ct.ThrowIfCancellationRequested()
                let info = FileInfo(pathOf key)

                if not info.Exists then
                    raise (ObjectStoreException.NotFound key)

                Task.FromResult
                    { Meta = metaOf key info.Length info.LastWriteTimeUtc
                      Attributes = ObjectStore.noAttributes })

        member _.ListAsync(prefix: string, ct: CancellationToken) : Task<IReadOnlyList<ObjectMeta>> =
            ObjectKey.validatePrefix prefix

            guard prefix "list" true (fun () ->
                ct.ThrowIfCancellationRequested()
                let slash = prefix.LastIndexOf '/'

                let start =
                    if slash < 0 then
                        root
                    else
                        Path.Join(root, prefix.Substring(0, slash))

                let found = ResizeArray<ObjectMeta>()

                if Directory.Exists start then
                    let options =
                        EnumerationOptions(
                            RecurseSubdirectories = true,
                            AttributesToSkip = FileAttributes.None,
                            IgnoreInaccessible = false,
                            ReturnSpecialDirectories = false
                        )

                    let paths =
                        FileSystemEnumerable<string>(
                            start,
                            FileSystemEnumerable.FindTransform(fun entry -> entry.ToFullPath()),
                            options
                        )

                    paths.ShouldRecursePredicate <-
                        FileSystemEnumerable.FindPredicate(fun entry ->
                            let dirKey = keyOf (entry.ToFullPath()) + "/"

                            dirKey <> LocalFileObjectStore.StagingDirectoryName + "/"
                            && (dirKey.StartsWith(prefix, StringComparison.Ordinal)
                                || prefix.StartsWith(dirKey, StringComparison.Ordinal)))

                    paths.ShouldIncludePredicate <-
                        FileSystemEnumerable.FindPredicate(fun entry ->
                            not entry.IsDirectory
                            && not (isTempName entry.FileName)
                            && (keyOf (entry.ToFullPath())).StartsWith(prefix, StringComparison.Ordinal))

                    let inStaging (key: string) =
                        key.StartsWith(LocalFileObjectStore.StagingDirectoryName + "/", StringComparison.Ordinal)

                    for path in paths do
                        let key = keyOf path
                        let info = FileInfo path

                        if info.Exists && not (inStaging key) && ObjectKey.isValid key then
                            found.Add(metaOf key info.Length info.LastWriteTimeUtc)

                found.Sort(fun a b -> String.CompareOrdinal(a.Key, b.Key))
                Task.FromResult(found :> IReadOnlyList<ObjectMeta>))

        member _.DeleteAsync(key: string, ct: CancellationToken) : Task =
            validateKey key

            Task.Run(
                (fun () ->
                    guard key "delete" false (fun () ->
                        withLock
                            key
                            (fun () ->
                                let path = pathOf key

                                if File.Exists path then
                                    try
                                        File.Delete path
                                    with :? DirectoryNotFoundException ->
                                        ()

                                Task.FromResult(()))
                            ct)
                    :> Task),
                ct
            )

        member _.Describe: string = describe
