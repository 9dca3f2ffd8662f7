module Slate.Properties.CrashTests

open Expecto

let allTests = testList "Crash" []
