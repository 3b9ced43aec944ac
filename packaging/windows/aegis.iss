; Inno Setup 6 script for the Windows installer of Aegis (built on Windows; see docs/packaging.md):
;   pyinstaller --noconfirm pyinstaller.spec        -> dist\aegis\ (aegis.exe, aegis-tray.exe)
;   iscc /DAppVersion=0.1.0 packaging\windows\aegis.iss   -> dist\aegis-0.1.0-setup.exe
; Installs per user by default (no admin rights); Start menu entry, optional start at login
; (an HKCU Run value: on Windows this task is the switch; the tray app's "Start Aegis when I
; log in" is shown on Linux only), "Scan with Aegis" in Explorer's context menu, and an
; uninstaller that asks whether to keep the quarantine.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Aegis"
#define BundleDir "..\..\dist\aegis"

[Setup]
AppId={{6B1C7F0E-4E3A-4C53-9D8B-AE915A0C2D18}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=The Aegis project
DefaultDirName={autopf}\Aegis
DefaultGroupName=Aegis
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=aegis-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\aegis-tray.exe
; A running tray app holds its files: ask it to close (Restart Manager) before replacing them.
CloseApplications=yes
RestartApplications=no

[Tasks]
Name: "autostart"; Description: "Start Aegis when I log in"; GroupDescription: "Protection:"
Name: "contextmenu"; Description: "Add ""Scan with Aegis"" to Explorer's menu"; GroupDescription: "Integration:"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Aegis"; Filename: "{app}\aegis-tray.exe"; Parameters: "--show"
Name: "{group}\Uninstall Aegis"; Filename: "{uninstallexe}"

[Registry]
; Start at login.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; \
  ValueName: "Aegis"; ValueData: """{app}\aegis-tray.exe"""; Flags: uninsdeletevalue; Tasks: autostart
; Explorer: right click > Scan with Aegis, on files and folders.
Root: HKCU; Subkey: "Software\Classes\*\shell\AegisScan"; ValueType: string; ValueName: ""; \
  ValueData: "Scan with Aegis"; Flags: uninsdeletekey; Tasks: contextmenu
Root: HKCU; Subkey: "Software\Classes\*\shell\AegisScan"; ValueType: string; ValueName: "Icon"; \
  ValueData: "{app}\aegis-tray.exe"; Tasks: contextmenu
Root: HKCU; Subkey: "Software\Classes\*\shell\AegisScan\command"; ValueType: string; ValueName: ""; \
  ValueData: """{app}\aegis-tray.exe"" --scan ""%1"""; Tasks: contextmenu
Root: HKCU; Subkey: "Software\Classes\Directory\shell\AegisScan"; ValueType: string; ValueName: ""; \
  ValueData: "Scan with Aegis"; Flags: uninsdeletekey; Tasks: contextmenu
Root: HKCU; Subkey: "Software\Classes\Directory\shell\AegisScan"; ValueType: string; ValueName: "Icon"; \
  ValueData: "{app}\aegis-tray.exe"; Tasks: contextmenu
Root: HKCU; Subkey: "Software\Classes\Directory\shell\AegisScan\command"; ValueType: string; ValueName: ""; \
  ValueData: """{app}\aegis-tray.exe"" --scan ""%1"""; Tasks: contextmenu

[Run]
Filename: "{app}\aegis-tray.exe"; Parameters: "--show"; Description: "Start Aegis now"; \
  Flags: nowait postinstall skipifsilent

[UninstallRun]
; Stop the running tray app (it quits cleanly on WM_CLOSE / taskkill without /F) before removing it.
Filename: "{sys}\taskkill.exe"; Parameters: "/IM aegis-tray.exe"; Flags: runhidden; RunOnceId: "StopTray"

[Code]
{ The profile (settings, history, quarantine) lives in %LOCALAPPDATA%\Aegis (platformdirs'
  user data/config/state folders, appauthor=False). The quarantine holds the user's own
  (encrypted) files: never delete it without asking. }
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Profile: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    Profile := ExpandConstant('{localappdata}\Aegis');
    if DirExists(Profile) then
    begin
      if SuppressibleMsgBox(
           'Keep the quarantine, settings and detection history?' + #13#10 + #13#10 +
           'Yes keeps them for a later installation of Aegis (in ' + Profile + ').' + #13#10 +
           'No deletes them, including the files in quarantine.',
           mbConfirmation, MB_YESNO or MB_DEFBUTTON1, IDYES) = IDNO then
        DelTree(Profile, True, True, True);
    end;
  end;
end;
