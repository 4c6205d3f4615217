/** A stand-in for @jupyterlab/ui-components in unit tests: plain elements with the same props. */
import React from 'react';

export function Button(props: any): JSX.Element {
  const { minimal, small, ...rest } = props;
  return <button {...rest} />;
}

export function HTMLSelect(props: any): JSX.Element {
  const { options = [], ...rest } = props;
  return (
    <select {...rest}>
      {options.map((option: { label: string; value: string }) => (
        <option key={option.value} value={option.value}>
          {option.label}
        </option>
      ))}
    </select>
  );
}

export class LabIcon {
  constructor(readonly options: unknown = {}) {}
  react = (): JSX.Element => <span className="icon" />;
}

export const caretDownIcon = new LabIcon();
export const caretRightIcon = new LabIcon();
export const closeIcon = new LabIcon();
export const copyIcon = new LabIcon();
export const editIcon = new LabIcon();
export const fileIcon = new LabIcon();
export const folderIcon = new LabIcon();

export class ReactWidget {
  node = document.createElement('div');
  addClass(): void {}
  update(): void {}
}
