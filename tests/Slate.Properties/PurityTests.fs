/// Slate.Model stays pure (CONVENTIONS habit 1): its metadata references no clock, randomness,
/// file, network, console, environment or logging API, and only the allowed assemblies.
module Slate.Properties.PurityTests

open System
open System.IO
open System.Reflection.Metadata
open System.Reflection.PortableExecutable
open Expecto

let private modelPath () =
    typeof<Slate.Model.RowEntry>.Assembly.Location

let private allowedAssemblies =
    set
        [ "System.Runtime"
          "System.Memory"
          "System.Collections"
          "System.Runtime.Intrinsics"
          "System.Runtime.InteropServices"
          "System.Numerics.Vectors"
          "System.Text.Encoding.Extensions"
          "System.IO.Compression"
          "System.IO.Hashing"
          "System.Linq"
          "System.Threading"
          "FSharp.Core"
          "K4os.Compression.LZ4"
          "ZstdSharp"
          "Snappier"
          "netstandard" ]

let private forbiddenTypes =
    set
        [ "System.Random"
          "System.Guid.NewGuid"
          "System.IO.File"
          "System.IO.FileInfo"
          "System.IO.FileStream"
          "System.IO.Directory"
          "System.IO.DirectoryInfo"
          "System.IO.Path"
          "System.Console"
          "System.Environment"
          "System.Diagnostics.Stopwatch"
          "System.Diagnostics.Debug"
          "System.Diagnostics.Trace"
          "System.Threading.Thread"
          "System.Threading.Tasks.Task"
          "System.TimeProvider"
          "System.Net.Http.HttpClient"
          "System.Security.Cryptography.RandomNumberGenerator" ]

let private forbiddenMembers =
    set
        [ "System.DateTime.get_Now"
          "System.DateTime.get_UtcNow"
          "System.DateTime.get_Today"
          "System.DateTimeOffset.get_Now"
          "System.DateTimeOffset.get_UtcNow"
          "System.Guid.NewGuid" ]

let private typeName (md: MetadataReader) (h: EntityHandle) : string =
    match h.Kind with
    | HandleKind.TypeReference ->
        let t = md.GetTypeReference(TypeReferenceHandle.op_Explicit h)
        md.GetString(t.Namespace) + "." + md.GetString(t.Name)
    | HandleKind.TypeDefinition ->
        let t = md.GetTypeDefinition(TypeDefinitionHandle.op_Explicit h)
        md.GetString(t.Namespace) + "." + md.GetString(t.Name)
    | _ -> "?"

let allTests =
    testList
        "Purity"
        [ test "Slate.Model references only FSharp.Core, the BCL's pure parts, hashing and codecs" {
              use fs = File.OpenRead(modelPath ())
              use pe = new PEReader(fs)
              let md = pe.GetMetadataReader()

              let refs =
                  [ for h in md.AssemblyReferences -> md.GetString((md.GetAssemblyReference h).Name) ]

              for r in refs do
                  Expect.isTrue (allowedAssemblies.Contains r) (sprintf "Slate.Model must not reference %s" r)
          }

          test "Slate.Model uses no clock, randomness, I/O, console, environment, threads or tasks" {
              use fs = File.OpenRead(modelPath ())
              use pe = new PEReader(fs)
              let md = pe.GetMetadataReader()

              let types =
                  [ for h in md.TypeReferences ->
                        let t = md.GetTypeReference h
                        md.GetString(t.Namespace) + "." + md.GetString(t.Name) ]

              for t in types do
                  Expect.isFalse (forbiddenTypes.Contains t) (sprintf "Slate.Model references %s" t)

              let members =
                  [ for h in md.MemberReferences ->
                        let m = md.GetMemberReference h
                        typeName md m.Parent + "." + md.GetString(m.Name) ]

              for m in members do
                  Expect.isFalse (forbiddenMembers.Contains m) (sprintf "Slate.Model calls %s" m)

              // the check itself can see member references (it is not vacuous)
              Expect.contains types "System.IO.Compression.ZLibStream" "type references are visible"

              Expect.isTrue
                  (members
                   |> List.exists (fun m -> m.StartsWith "System.Buffers.Binary.BinaryPrimitives."))
                  "member references are visible"
          } ]
