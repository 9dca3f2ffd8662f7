/// Test helpers: the FsCheck configuration used everywhere, and small assertions.
module Slate.Properties.TestUtil

open Expecto
open Slate.Model

/// Default FsCheck configuration (100 cases unless a property asks for more).
let config: FsCheckConfig =
    { FsCheckConfig.defaultConfig with
        maxTest = 100
        arbitrary = [ typeof<Generators.Arbs> ] }

/// A property with the shared configuration.
let testProp (name: string) (property: 'a) : Test =
    testPropertyWithConfig config name property

/// A property with a given number of cases.
let testPropN (n: int) (name: string) (property: 'a) : Test =
    testPropertyWithConfig { config with maxTest = n } name property

/// A property pinned to a replay seed `(seed, gamma, size)` (keep failing seeds as regression cases).
let testPropSeed (seed: uint64 * uint64 * int option) (name: string) (property: 'a) : Test =
    testPropertyWithConfig { config with replay = Some seed } name property

/// Unwraps an Ok or fails the test with the described decode error.
let okOrFail (r: Result<'a, DecodeError>) : 'a =
    match r with
    | Ok v -> v
    | Error e -> failtestf "unexpected decode error: %s" (DecodeError.describe e)

/// The `shared` folder beside the repository (or `SLATE_SHARED_DIR`).
let sharedDir () : string =
    match System.Environment.GetEnvironmentVariable "SLATE_SHARED_DIR" with
    | null
    | "" ->
        let rec up (d: System.IO.DirectoryInfo) =
            if isNull d then
                failwith "cannot find the shared folder (set SLATE_SHARED_DIR)"
            else
                let candidate = System.IO.Path.Combine(d.FullName, "shared")

                if System.IO.Directory.Exists(System.IO.Path.Combine(candidate, "compat")) then
                    candidate
                else
                    up d.Parent

        up (System.IO.DirectoryInfo System.AppContext.BaseDirectory)
    | dir -> dir

/// The SlateDB 0.12.1 compatibility vectors.
let compatDir () : string =
    System.IO.Path.Combine(sharedDir (), "compat", "slatedb-0.12.1")

/// A fresh temporary folder, deleted by `cleanup`.
let tempDir (label: string) : string =
    let d =
        System.IO.Path.Combine(
            System.IO.Path.GetTempPath(),
            sprintf "slate-%s-%s" label (System.Guid.NewGuid().ToString("N"))
        )

    System.IO.Directory.CreateDirectory d |> ignore
    d

/// Copies a folder tree.
let rec copyTree (src: string) (dst: string) : unit =
    System.IO.Directory.CreateDirectory dst |> ignore

    for f in System.IO.Directory.GetFiles src do
        System.IO.File.Copy(f, System.IO.Path.Combine(dst, System.IO.Path.GetFileName f))

    for d in System.IO.Directory.GetDirectories src do
        copyTree d (System.IO.Path.Combine(dst, System.IO.Path.GetFileName d))

/// Deletes a folder tree, ignoring a missing one.
/// The non-empty lines of a command's output, without trailing carriage returns.
let outputLines (s: string) : string list =
    s.Split('\n', System.StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun l -> l.TrimEnd '\r')
    |> List.ofArray

let cleanup (dir: string) : unit =
    if System.IO.Directory.Exists dir then
        System.IO.Directory.Delete(dir, true)
