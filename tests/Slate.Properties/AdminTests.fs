module Slate.Properties.AdminTests

open Expecto

let allTests = testList "Admin" []
