module Slate.Properties.CompactorTests

open Expecto

let allTests = testList "Compactor" []
