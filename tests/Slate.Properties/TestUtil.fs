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
let testProp (name: string) (property: 'a) : Test = testPropertyWithConfig config name property

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
