/// Local storage emulators for the S3 and Azure store tests: moto_server (S3) and Azurite (Blob).
/// Each is started lazily, once per test run, on 127.0.0.1 and a free port, and stopped (whole
/// process tree) when the test process exits; a small bash watchdog also stops it if the test
/// process dies without running its exit handlers. When an emulator cannot be had, its tests are
/// skipped with the reason, except under CI=true where they fail.
module Slate.Properties.Emulators

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Threading
open Expecto

/// A running emulator.
[<NoComparison; ReferenceEquality>]
type Emulator =
    {
        /// "moto" or "azurite".
        Name: string
        /// The base URL, e.g. "http://127.0.0.1:41234".
        Endpoint: string
        /// The TCP port on 127.0.0.1.
        Port: int
        /// The watchdog process (parent of the emulator).
        Process: Process
    }

/// True when running under CI (CI=true): missing emulators then fail the tests.
let isCI: bool =
    String.Equals(Environment.GetEnvironmentVariable "CI", "true", StringComparison.OrdinalIgnoreCase)

/// The pinned Azurite version installed into the npm cache.
let azuriteVersion = "3.37.0"

let private running = ConcurrentBag<Process>()
let private scratch = ConcurrentBag<string>()

let private stopAll () =
    for p in running do
        try
            if not p.HasExited then
                p.Kill true
                p.WaitForExit 5000 |> ignore
        with _ ->
            ()

    for d in scratch do
        try
            Directory.Delete(d, true)
        with _ ->
            ()

do AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> stopAll ())

// The SDKs must never probe the cloud instance-metadata endpoint from the tests.
do Environment.SetEnvironmentVariable("AWS_EC2_METADATA_DISABLED", "true")

let private freePort () : int =
    let l = new TcpListener(IPAddress.Loopback, 0)
    l.Start()
    let port = (l.LocalEndpoint :?> IPEndPoint).Port
    l.Stop()
    port

let private answers (port: int) : bool =
    try
        use c = new TcpClient()
        c.Connect(IPAddress.Loopback, port)
        true
    with _ ->
        false

/// Finds an executable on PATH.
let private onPath (name: string) : string option =
    (Environment.GetEnvironmentVariable "PATH"
     |> Option.ofObj
     |> Option.defaultValue "")
        .Split
        ':'
    |> Array.filter (fun d -> d.Length > 0)
    |> Array.map (fun d -> Path.Combine(d, name))
    |> Array.tryFind File.Exists

/// Runs the emulator under a bash watchdog that kills it when this process is gone.
let private watchdog =
    "p=$1; shift; \"$@\" & c=$!; trap 'kill $c 2>/dev/null; wait $c; exit 0' TERM INT; "
    + "while kill -0 \"$p\" 2>/dev/null && kill -0 \"$c\" 2>/dev/null; do sleep 0.5; done; "
    + "kill \"$c\" 2>/dev/null; wait \"$c\""

/// Starts `exe (args port)` in `workDir` and waits up to 30 s for the port.
let private launch
    (name: string)
    (exe: string)
    (args: int -> string list)
    (workDir: string)
    : Result<Emulator, string> =
    let attempt () =
        let port = freePort ()
        let psi = ProcessStartInfo("bash")

        for a in
            [ "-c"; watchdog; "slate-emulator"; string Environment.ProcessId; exe ]
            @ args port do
            psi.ArgumentList.Add a

        psi.UseShellExecute <- false
        psi.WorkingDirectory <- workDir
        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.RedirectStandardInput <- true
        let output = ConcurrentQueue<string>()

        let keep (line: string) =
            if not (isNull line) then
                output.Enqueue line

                while output.Count > 40 do
                    output.TryDequeue() |> ignore

        let p = new Process(StartInfo = psi)
        p.OutputDataReceived.Add(fun e -> keep e.Data)
        p.ErrorDataReceived.Add(fun e -> keep e.Data)
        p.Start() |> ignore
        running.Add p
        p.BeginOutputReadLine()
        p.BeginErrorReadLine()
        let deadline = DateTime.UtcNow.AddSeconds 30.0

        let rec wait () =
            if answers port then
                Ok
                    { Name = name
                      Endpoint = $"http://127.0.0.1:{port}"
                      Port = port
                      Process = p }
            elif p.HasExited || DateTime.UtcNow > deadline then
                (try
                    p.Kill true
                 with _ ->
                     ())

                Error $"{name} did not start on port {port}: {String.Join(' ', output)}"
            else
                Thread.Sleep 100
                wait ()

        wait ()

    // A port taken between picking and binding makes the server exit: try a few ports.
    let rec tries n =
        match attempt () with
        | Ok e -> Ok e
        | Error reason when n > 1 && reason.Contains "in use" -> tries (n - 1)
        | Error reason -> Error reason

    tries 3

let private startMoto () : Result<Emulator, string> =
    let r =
        match onPath "moto_server" with
        | None -> Error "moto_server is not on PATH (pip install 'moto[server]')"
        | Some exe -> launch "moto" exe (fun port -> [ "-H"; "127.0.0.1"; "-p"; string port ]) (Path.GetTempPath())

    match r with
    | Ok e -> eprintfn "[emulators] moto_server listening on %s" e.Endpoint
    | Error reason ->
        eprintfn
            "[emulators] moto unavailable, %s: %s"
            (if isCI then "failing its tests" else "skipping its tests")
            reason

    r

/// The folder Azurite is installed into: $SLATE_NPM_CACHE/azurite (default ~/.cache/slate-npm).
let azuriteFolder () : string =
    let cache =
        match Environment.GetEnvironmentVariable "SLATE_NPM_CACHE" with
        | null
        | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".cache", "slate-npm")
        | c -> c

    Path.Combine(cache, "azurite")

/// Installs Azurite into `azuriteFolder ()` unless present (under a file lock, so concurrent
/// test processes do not install twice). Returns the azurite-blob path.
let private installAzurite () : Result<string, string> =
    let folder = azuriteFolder ()
    let bin = Path.Combine(folder, "node_modules", ".bin", "azurite-blob")

    if File.Exists bin then
        Ok bin
    else
        match onPath "npm" with
        | None -> Error "npm is not on PATH (needed to install azurite)"
        | Some npm ->
            Directory.CreateDirectory folder |> ignore

            use _lock =
                let rec take n =
                    try
                        new FileStream(
                            Path.Combine(folder, ".install.lock"),
                            FileMode.OpenOrCreate,
                            FileAccess.ReadWrite,
                            FileShare.None
                        )
                    with :? IOException when n > 0 ->
                        Thread.Sleep 1000
                        take (n - 1)

                take 600

            if File.Exists bin then
                Ok bin
            else
                eprintfn "[emulators] installing azurite %s into %s" azuriteVersion folder
                let psi = ProcessStartInfo(npm)

                for a in
                    [ "install"
                      "--prefix"
                      folder
                      "--no-audit"
                      "--no-fund"
                      "--loglevel=error"
                      $"azurite@{azuriteVersion}" ] do
                    psi.ArgumentList.Add a

                psi.UseShellExecute <- false
                psi.RedirectStandardOutput <- true
                psi.RedirectStandardError <- true
                use p = Process.Start psi
                let out = p.StandardOutput.ReadToEndAsync()
                let err = p.StandardError.ReadToEndAsync()

                if not (p.WaitForExit(TimeSpan.FromMinutes 5.0)) then
                    p.Kill true
                    Error "npm install azurite timed out after 5 minutes"
                elif p.ExitCode <> 0 || not (File.Exists bin) then
                    Error $"npm install azurite failed ({p.ExitCode}): {out.Result} {err.Result}"
                else
                    Ok bin

let private startAzurite () : Result<Emulator, string> =
    let r =
        installAzurite ()
        |> Result.bind (fun bin ->
            let location =
                Path.Combine(Path.GetTempPath(), "slate-azurite-" + Guid.NewGuid().ToString("N"))

            Directory.CreateDirectory location |> ignore
            scratch.Add location

            launch
                "azurite"
                bin
                (fun port ->
                    [ "--blobHost"
                      "127.0.0.1"
                      "--blobPort"
                      string port
                      "--inMemoryPersistence"
                      "--disableTelemetry"
                      "--skipApiVersionCheck"
                      "--silent" ])
                location)

    match r with
    | Ok e -> eprintfn "[emulators] azurite-blob listening on %s" e.Endpoint
    | Error reason ->
        eprintfn
            "[emulators] azurite unavailable, %s: %s"
            (if isCI then "failing its tests" else "skipping its tests")
            reason

    r

/// moto_server, started on first use.
let moto: Lazy<Result<Emulator, string>> = lazy (startMoto ())

/// Azurite (blob service only), started on first use.
let azurite: Lazy<Result<Emulator, string>> = lazy (startAzurite ())

/// The emulator, or (outside CI) a skipped test with the reason, or (under CI) a failed test.
let require (emulator: Lazy<Result<Emulator, string>>) : Emulator =
    match emulator.Force() with
    | Ok e -> e
    | Error reason when isCI -> failtestf "emulator required under CI=true: %s" reason
    | Error reason -> skiptestf "emulator unavailable: %s" reason

/// Azurite's well-known development account (public, documented emulator credentials).
let azuriteAccount = "devstoreaccount1"

/// Azurite's well-known development account key (public, documented emulator credentials).
let azuriteKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/// The blob service URI of a running Azurite.
let azuriteServiceUri (e: Emulator) : string = $"{e.Endpoint}/{azuriteAccount}"

/// A connection string for a running Azurite.
let azuriteConnectionString (e: Emulator) : string =
    $"DefaultEndpointsProtocol=http;AccountName={azuriteAccount};AccountKey={azuriteKey};BlobEndpoint={azuriteServiceUri e};"

/// A canned HTTP server on 127.0.0.1 (a fresh port) for error-normalisation tests: every request
/// is counted and answered by `respond` on a thread-pool thread.
type FakeServer(respond: HttpListenerContext -> unit) =
    let listener, port =
        let rec start n =
            let port = freePort ()
            let l = new HttpListener()
            l.Prefixes.Add $"http://127.0.0.1:{port}/"

            try
                l.Start()
                l, port
            with _ when n > 1 ->
                l.Close()
                start (n - 1)

        start 5

    let mutable requests = 0

    let rec accept () =
        async {
            let! next = listener.GetContextAsync() |> Async.AwaitTask |> Async.Catch

            match next with
            | Choice1Of2 ctx ->
                Interlocked.Increment &requests |> ignore

                Tasks.Task.Run(fun () ->
                    try
                        try
                            respond ctx
                        with _ ->
                            ()
                    finally
                        try
                            ctx.Response.Close()
                        with _ ->
                            ())
                |> ignore

                return! accept ()
            | Choice2Of2 _ -> () // listener stopped
        }

    do Async.Start(accept ())

    /// The base URL, e.g. "http://127.0.0.1:41234".
    member _.Endpoint: string = $"http://127.0.0.1:{port}"

    /// The number of requests received so far.
    member _.Requests: int = Volatile.Read &requests

    interface IDisposable with
        member _.Dispose() =
            try
                listener.Stop()
                listener.Close()
            with _ ->
                ()

/// Writes a canned answer: status, headers and a UTF-8 body (omitted for HEAD requests).
let answer (ctx: HttpListenerContext) (status: int) (headers: (string * string) list) (body: string) : unit =
    let r = ctx.Response
    r.StatusCode <- status

    for name, value in headers do
        r.Headers.[name] <- value

    let bytes = Text.Encoding.UTF8.GetBytes body

    if ctx.Request.HttpMethod = "HEAD" || bytes.Length = 0 then
        r.ContentLength64 <- 0L
    else
        r.ContentType <- "application/xml"
        r.ContentLength64 <- int64 bytes.Length
        r.OutputStream.Write(bytes, 0, bytes.Length)

/// A port on 127.0.0.1 that nothing listens on (for connection-refused tests).
let closedPort () : int = freePort ()
