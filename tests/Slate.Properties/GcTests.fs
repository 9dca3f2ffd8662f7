module Slate.Properties.GcTests

open Expecto

let allTests = testList "Gc" []
